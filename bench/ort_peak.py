"""The yardstick of rt-bench profile's "% of peak": the best fp32 rate of one large MatMul run
by ONNX Runtime itself at the profiled sessions' thread count (the same GEMM library, threads and
session options as the graphs), beside numpy's BLAS rate (bench/machine.py)."""

from __future__ import annotations

import time

import numpy as np

from anymodal.runtime.backends.ort import _field  # the hand-written protobuf of probe_model


def matmul_model(n: int) -> bytes:
    """A serialized ONNX model Y = MatMul(A, B), A and B float [n, n] inputs (no onnx package)."""
    tensor_type = _field(1, _field(1, 1) + _field(2, _field(1, _field(1, n)) + _field(1, _field(1, n))))
    value = lambda name: _field(1, name) + _field(2, tensor_type)  # noqa: E731
    node = _field(1, "A") + _field(1, "B") + _field(2, "Y") + _field(4, "MatMul")
    graph = _field(1, node) + _field(2, "peak") + _field(11, value("A")) + _field(11, value("B")) \
        + _field(12, value("Y"))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))


def ort_matmul_peak(options, n: int = 1024, seconds: float = 1.0) -> dict:
    """{gflops, calls, n}: best call of an n×n×n fp32 MatMul on a session built with `options`
    (an onnxruntime SessionOptions: the profiled graphs' thread count and spinning)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(matmul_model(n), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal((n, n), dtype=np.float32) for k in ("A", "B")}
    sess.run(None, feeds)  # warm-up: thread pool start, page faults
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return {"gflops": 2 * n**3 / min(times) / 1e9, "calls": len(times), "n": n}
