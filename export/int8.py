"""INT8 graphs for ONNX Runtime on CPU, two modes (`rt-export --int8-mode`):

* dynamic (the default): int8 MatMul/Gemm weights, activations quantised per request
  (DynamicQuantizeMatMul). No calibration data needed.
* static: calibrated QDQ on the bundle's training split (export/calibration.py), uint8
  activations with fixed scales. ORT fuses it into QLinearMatMul only where each weight has one
  scale per tensor or per output column of a 2-D weight, so (as in dynamic mode) the experts'
  3-D batched weights get one scale per tensor: per output channel they stay DequantizeLinear +
  float MatMul, re-dequantised on every call (slower than fp32).

Measured on a trained paper-sized model (docs/performance.md, "INT8 on a trained paper-sized
model"): the same accuracy within one test utterance, dynamic's best latency lower in every
condition, so dynamic is the default.

The accuracy gate: every condition is scored on the validation split through the Runtime with
the fp32 and the int8 graphs; the bundle records the deltas and the max logit difference, and
an int8 variant losing more than `max_drop` points on any condition is refused.
(TensorRT's calibrated QDQ INT8 lives in export/quantize.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import ExportError

from .quantize import feed_reader, stage_copy

DEFAULT_MAX_DROP = 1.0  # points
INT8_MODES = ("dynamic", "static")
DEFAULT_INT8_MODE = "dynamic"  # measured faster than static on CPU, same accuracy (docs/performance.md)
QUANTIZATION = {"dynamic": "dynamic, per-channel int8 MatMul/Gemm weights",
                "static": "static QDQ calibrated on the training split, per-channel int8 MatMul/Gemm weights "
                          "(per-tensor for the experts' batched weights), uint8 activations"}


def _batched_weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes whose constant weight is 3-D (the experts' batched matmuls)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ranks = {i.name: len(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and len(n.input) > 1 and ranks.get(n.input[1], 0) > 2]


class _NoPreprocessAdvice(logging.Filter):
    """ORT's quantizer logs 'Please consider to run pre-processing…' on the root logger for every
    call; our graphs are already shape-inferred and constant-folded at export."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_graph(src: Path, dst: Path, mode: str = DEFAULT_INT8_MODE, feeds: list[dict] | None = None) -> Path:
    """Int8 weights of every MatMul/Gemm with a constant weight. 2-D weights per output
    channel; ORT's integer matmuls take one scale per tensor for a 3-D (batched-experts)
    weight, so those get a second, per-tensor pass. mode dynamic: activations quantised per
    request; static: activation scales calibrated on `feeds` (the graph's inputs)."""
    if mode not in INT8_MODES:
        raise ExportError(f"unknown int8 mode {mode!r}; choose from {', '.join(INT8_MODES)}")
    if mode == "static" and not feeds:
        raise ExportError(f"{src.name}: static int8 needs calibration feeds (the training split)")
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        return _quantize(src, dst) if mode == "dynamic" else _quantize_static(src, dst, feeds)
    finally:
        logging.getLogger().removeFilter(quiet)


def _quantize(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    batched = _batched_weight_matmuls(src)
    mid = dst.with_suffix(".pc.onnx")
    weights_only = {"MatMulConstBOnly": True}  # attention's activation x activation matmuls stay fp32
    quantize_dynamic(str(src), str(mid), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=batched,
                     extra_options=weights_only)
    try:
        if batched:
            quantize_dynamic(str(mid), str(dst), per_channel=False, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], nodes_to_quantize=batched,
                             extra_options=weights_only)
        else:
            mid.replace(dst)
    finally:
        mid.unlink(missing_ok=True)
    return dst


def calibration_root(data: dict) -> Path:
    """The training data static mode calibrates on (the run's recorded data root), checked
    before anything is exported."""
    from anymodal.runtime.errors import CalibrationDataError

    root = data.get("root")
    if not root or not Path(root).exists():
        raise CalibrationDataError(f"--int8-mode static calibrates on the training split: its data root {root!r} "
                                   "is not recorded or not reachable from here")
    return Path(root)


def int8_calibration(bundle, data: dict) -> dict[str, list[dict]]:
    """Static mode's calibration feeds per graph name: the first samples of the recorded
    training split, made into each graph's feeds as they are served (export/calibration.py)."""
    from .calibration import graph_feeds, training_set
    from .specs import GRAPH_NAMES

    cal = training_set(bundle, calibration_root(data))
    # whole conversations (no cut): ORT's CPU graphs take any length
    return {g: list(graph_feeds(bundle, g, cal, max_seq=None)) for g in GRAPH_NAMES}


def _quantize_static(src: Path, dst: Path, feeds: list[dict]) -> Path:
    import tempfile

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    batched = _batched_weight_matmuls(src)
    common = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                  extra_options={"MatMulConstBOnly": True, "WeightSymmetric": True})
    # ORT's quantiser writes `<graph>-inferred.onnx` beside its input: work on staged copies
    with tempfile.TemporaryDirectory(prefix="anymodal-int8-") as work:
        mid = Path(work) / "pc" / src.name
        mid.parent.mkdir()
        quantize_static(str(stage_copy(src, Path(work))), str(mid), feed_reader(feeds), per_channel=True,
                        op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=batched, **common)
        if batched:  # calibrated again through the first pass's graph: the batched matmuls' inputs
            quantize_static(str(mid), str(dst), feed_reader(feeds), per_channel=False, op_types_to_quantize=["MatMul"],
                            nodes_to_quantize=batched, **common)
        else:
            mid.replace(dst)
    return dst


def accuracy_deltas(bundle_dir: Path, data: Path, task: str, max_drop: float = DEFAULT_MAX_DROP) -> dict:
    """Score fp32 and int8 on the validation split; raise ExportError naming the first
    condition whose headline score drops by more than `max_drop` points."""
    from anymodal.bench.accuracy import precision_deltas

    out = {**precision_deltas(bundle_dir, data, task, "val", "fp32", "int8"), "max_drop_points": max_drop}
    key = out["metric"]
    worst = min(out["conditions"].items(), key=lambda kv: kv[1]["delta_points"])
    if -worst[1]["delta_points"] > max_drop:
        c = worst[0]
        raise ExportError(f"int8 refused: condition {{{','.join(c)}}} loses {-worst[1]['delta_points']:.2f} "
                          f"points of {key.upper()} on the validation split (> --max-drop {max_drop:g})")
    return out


def max_logit_difference(bundle_dir: Path, feeds_by_graph: dict[str, list[dict]]) -> dict[str, float]:
    """Max |logit_int8 - logit_fp32| per graph over the given feeds (real rows only)."""
    from anymodal.runtime.backends.ort import OrtCpuBackend
    from anymodal.runtime.bundle import Bundle

    fp32, int8 = (OrtCpuBackend(Bundle(bundle_dir, p), threads=None) for p in ("fp32", "int8"))
    out = {}
    for graph, feed_list in feeds_by_graph.items():
        worst = 0.0
        for feeds in feed_list:
            rows = feeds.get("mask", None)
            a, b = fp32.run(graph, feeds)["logits"], int8.run(graph, feeds)["logits"]
            diff = np.abs(a.astype(np.float64) - b)
            worst = max(worst, float(diff[rows].max() if rows is not None and rows.ndim == diff.ndim - 1
                                     else diff.max()))
        out[graph] = worst
    fp32.close()
    int8.close()
    return out


def int8_report(model, bundle_dir: Path, data: dict, max_drop: float = DEFAULT_MAX_DROP,
                mode: str = DEFAULT_INT8_MODE) -> dict:
    """What the manifest records about an int8 variant: the max logit difference against the
    fp32 graphs (random features at the verification shapes) and, when the training data is
    reachable, the per-condition accuracy delta on the validation split (the refusal gate)."""
    from .specs import GRAPH_NAMES, VERIFY_SHAPES, model_graph_specs
    from .torch_export import example_feeds

    shapes = (VERIFY_SHAPES[0], VERIFY_SHAPES[-1])  # one row and a ragged batch
    feeds = {g: [example_feeds(model_graph_specs(model, g)[0], b, s, seed=200 + i)
                 for i, (b, s) in enumerate(shapes)] for g in GRAPH_NAMES}
    report = {"mode": mode, "quantization": QUANTIZATION[mode],
              "max_logit_difference": max_logit_difference(bundle_dir, feeds)}
    root = data.get("root")
    # splits recorded (GCNet layout) must include val; MMSA pickles carry their own valid split
    has_val = "val" in (data.get("splits") or {"val": None})
    if not root or not Path(root).exists() or not has_val:
        report["accuracy"] = {"measured": False,
                              "reason": "the training data is not recorded or not reachable from here"}
        return report
    report["accuracy"] = {"measured": True, **accuracy_deltas(bundle_dir, Path(root), model.cfg.task, max_drop)}
    return report
