"""After every engine build: each engine against ONNX Runtime (CPU) on the graph it was built
from, on the same feeds — the training split the bundle records where it is reachable (always
for INT8: its calibration data), else random features at the optimisation profile's shapes,
and engines.json says which. A miss raises EngineParityError naming the graph, so a build that
disagrees with the graph it came from is never published."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import EngineParityError
from anymodal.runtime.requests import MASKED

from .calibration import CalibrationSet, graph_feeds

# error = max |engine - ORT| / max(max |ORT|, 1) over real utterances, per output
# (relative to the output's scale, at least 1: logits and router weights are O(1)).
ENGINE_TOLERANCE = {
    "fp32": 5e-3,  # TensorRT enables TF32 for fp32 builds by default: 10-bit mantissa inputs
    "fp16": 3e-2,  # fp16 kernels against the fp32 (or fp16) graph
    "int8": 1e-1,  # against ORT on the same QDQ graph: rounding at Q boundaries and fusion order differ
}
RANDOM_SEEDS = (0, 1)  # random-feature parity: two draws at the profile's opt shape


def random_feeds(bundle: Bundle, graph: str, shapes: dict, seed: int) -> dict:
    """Standard-normal features at the profile's opt shape; masks all set; the masked graph's
    availability mixed (every row keeps one modality)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in bundle.graphs[graph]["inputs"]:
        shape = shapes[spec["name"]][1]
        if spec["dtype"] == "bool":
            value = np.ones(shape, bool)
            if spec["name"] == "avail" and graph == MASKED:
                value = rng.random(shape) < 0.6
                value[..., 0] |= ~value.any(-1)
            feeds[spec["name"]] = value
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
    return feeds


def _rows(feeds: dict, out: np.ndarray) -> np.ndarray:
    """The output's real rows: utterances under the mask, else every row."""
    mask = feeds.get("mask")
    if mask is not None and out.ndim >= mask.ndim and out.shape[:mask.ndim] == mask.shape:
        return out[mask]
    return out


def output_error(graph: str, name: str, got: np.ndarray, ref: np.ndarray) -> float:
    g, r = got.astype(np.float64), ref.astype(np.float64)
    if g.shape != r.shape:
        raise EngineParityError(f"engine {graph!r} output {name!r}: shape {got.shape}, ONNX Runtime {ref.shape}")
    finite = np.isfinite(r)
    if not np.array_equal(finite, np.isfinite(g)):  # NaN/Inf must be where the graph has them
        raise EngineParityError(f"engine {graph!r} output {name!r}: non-finite values where ONNX Runtime has "
                                "finite ones (or the reverse)")
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(g[finite] - r[finite]))) / max(float(np.max(np.abs(r[finite]))), 1.0)


def check_parity(bundle: Bundle, engine_dir: Path, sources: dict[str, Path], precision: str,
                 cal: CalibrationSet | None, shapes: dict, max_seq: int, progress=print) -> dict:
    """{reference, error, tolerance, data, graphs: {graph: max error}}; EngineParityError on a miss.
    `sources`: the ONNX file each engine was parsed from; `shapes`: profile shapes per graph."""
    import onnxruntime as ort

    from anymodal.runtime.backends.tensorrt import TensorRTBackend

    tol = ENGINE_TOLERANCE[precision]
    engines = TensorRTBackend(bundle, engine_dir=engine_dir)
    result = {"reference": "onnxruntime CPU on the graph each engine was built from",
              "error": "max |engine - onnxruntime| / max(max |onnxruntime|, 1) over real utterances",
              "tolerance": tol, **(cal.record() if cal else
                                    {"data": "random features at the profile's opt shape "
                                             "(no training data recorded or given)",
                                     "feeds_per_graph": len(RANDOM_SEEDS)}),
              "graphs": {}}
    try:
        for graph, src in sources.items():
            progress(f"parity {graph} ({precision}) against onnxruntime …")
            session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
            types = {i.name: np.float16 if i.type == "tensor(float16)" else None for i in session.get_inputs()}
            names = [o.name for o in session.get_outputs()]
            feed_list = list(graph_feeds(bundle, graph, cal, max_seq)) if cal else \
                [random_feeds(bundle, graph, shapes[graph], s) for s in RANDOM_SEEDS]
            worst = 0.0
            for feeds in feed_list:
                ref = dict(zip(names, session.run(names, {k: v.astype(types[k]) if types.get(k) else v
                                                          for k, v in feeds.items()})))
                got = engines.run(graph, feeds)
                for name in names:
                    err = output_error(graph, name, _rows(feeds, got[name]), _rows(feeds, ref[name]))
                    if not err <= tol:
                        raise EngineParityError(
                            f"engine {graph!r} ({precision}) output {name!r} differs from ONNX Runtime on "
                            f"{result['data']}: error {err:.3g} > tolerance {tol:g}; the engine is not published")
                    worst = max(worst, err)
            result["graphs"][graph] = {"max_error": worst, "feeds": len(feed_list)}
    finally:
        engines.close()
    return result
