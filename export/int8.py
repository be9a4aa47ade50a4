"""INT8 graphs for ONNX Runtime on CPU: per-channel int8 MatMul weights with dynamic (per-request)
activation quantisation. No calibration data needed, and on CPU it beat static QDQ here
(static QDQ adds a Quantize/Dequantize pair around every matmul at batch 1).

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

# the headline score per task: WA for emotion, Acc-2 (non-zero) for sentiment
HEADLINE = {"emotion": "wa", "sentiment": "acc2_non0"}
DEFAULT_MAX_DROP = 1.0  # points


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


def quantize_graph(src: Path, dst: Path) -> Path:
    """Int8 weights of every MatMul/Gemm with a constant weight, activations quantised per
    request (DynamicQuantizeMatMul). 2-D weights per output channel; ORT's integer matmul
    takes one scale per tensor for a 3-D (batched-experts) weight, so those get a second,
    per-tensor pass."""
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        return _quantize(src, dst)
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


def accuracy_deltas(bundle_dir: Path, data: Path, task: str, max_drop: float = DEFAULT_MAX_DROP) -> dict:
    """Score fp32 and int8 on the validation split; raise ExportError naming the first
    condition whose headline score drops by more than `max_drop` points."""
    from anymodal.bench.accuracy import accuracy_report

    fp32 = accuracy_report(bundle_dir, data, split="val", backend="ort-cpu", precision="fp32")
    int8 = accuracy_report(bundle_dir, data, split="val", backend="ort-cpu", precision="int8")
    key = HEADLINE[task]
    out = {"split": "val", "metric": key, "max_drop_points": max_drop, "conditions": {}}
    for cond, ref in fp32["conditions"].items():
        got = int8["conditions"][cond]
        delta = 100 * (got[key] - ref[key])  # points; negative = int8 worse
        out["conditions"][cond] = {"fp32": ref[key], "int8": got[key], "delta_points": delta}
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


def int8_report(model, bundle_dir: Path, data: dict, max_drop: float = DEFAULT_MAX_DROP) -> dict:
    """What the manifest records about an int8 variant: the max logit difference against the
    fp32 graphs (random features at the verification shapes) and, when the training data is
    reachable, the per-condition accuracy delta on the validation split (the refusal gate)."""
    from .specs import GRAPH_NAMES, VERIFY_SHAPES, model_graph_specs
    from .torch_export import example_feeds

    shapes = (VERIFY_SHAPES[0], VERIFY_SHAPES[-1])  # one row and a ragged batch
    feeds = {g: [example_feeds(model_graph_specs(model, g)[0], b, s, seed=200 + i)
                 for i, (b, s) in enumerate(shapes)] for g in GRAPH_NAMES}
    report = {"quantization": "dynamic, per-channel int8 MatMul/Gemm weights",
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
