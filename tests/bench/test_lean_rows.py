"""rt-bench's rows for the lean request path: session-run (the runtime row's own session) and
the overhead figure computed from the interleaved samples; ort-iobinding computes what
session.run computes. Schema and behaviour only, no timing thresholds."""

import numpy as np
import pytest

from anymodal import Runtime
from anymodal.bench.report import overhead_lines
from anymodal.bench.run import predict_overhead, run_bench
from anymodal.bench.variants import iobinding_call


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_overhead_rows_and_figure(small_bundle):
    res = run_bench(["a,t"], small_bundle, None, "ort,ort-iobinding,runtime,session-run", threads=1,
                    duration_s=0.2, warmup_s=0.05, progress=lambda s: None, shapes=((1, 6),), spinning=True)
    assert {"ort", "ort-iobinding", "runtime", "session-run"} <= set(res["variants"])
    o = res["predict_overhead_ms"]
    assert set(o) == {"p50", "paired_p50", "min", "rounds"} and o["rounds"] >= 20
    lat = {n: res["variants"][n]["latency_ms"] for n in ("runtime", "session-run")}
    assert o["min"] == lat["runtime"]["min"] - lat["session-run"]["min"]
    assert res["runtime_spinning"] is True
    assert "Runtime.predict − session.run (one process each, spinning on)" in overhead_lines(res)[0]
    same = run_bench(["a,t"], small_bundle, None, "runtime,session-run", threads=1, duration_s=0.05,
                     warmup_s=0.02, progress=lambda s: None, shapes=((1, 6),), in_process=True)
    assert "Runtime.predict − session.run (same session, spinning off)" in overhead_lines(same)[0]


def test_predict_overhead_is_paired_by_round():
    samples = {"runtime": np.array([3.0, 5.0, 4.0]), "session-run": np.array([2.0, 4.5, 1.0])}
    o = predict_overhead(samples)
    assert o == {"p50": 2.0, "paired_p50": 1.0, "min": 2.0, "rounds": 3}
    assert predict_overhead({"runtime": samples["runtime"]}) is None


def test_io_binding_equals_session_run(small_bundle):
    """The ort-iobinding row (outputs preallocated and bound once) serves session.run's outputs."""
    rt = Runtime(small_bundle, backend="ort-cpu")
    rng = np.random.default_rng(0)
    x = {"audio": rng.standard_normal((2, 5, rt.bundle.dims["a"])).astype(np.float32),
         "visual": rng.standard_normal((2, 5, rt.bundle.dims["v"])).astype(np.float32)}
    req = rt.request(**x)
    feeds = rt.family.feeds(req, req.graph, rt.bundle.dims, "float32", rt.bundle.model["config"])
    session = rt.backend.session(req.graph)
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(names, feeds)))
    call = iobinding_call(session, feeds)
    for _ in range(2):  # the bound buffers are rewritten by each call
        got = call()
        assert set(got) == set(want)
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value)
