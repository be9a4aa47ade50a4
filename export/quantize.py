"""INT8 through a calibrated QDQ ONNX graph (ONNX Runtime static quantisation): TensorRT
builds explicit-precision INT8 engines from the Q/DQ scales. Runs on CPU, so the calibration
and the accuracy of the quantised graph are checked here before any engine is built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import ExportError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.runtime.requests import UTTERANCES


def calibration_feeds(bundle: Bundle, graph: str, data: Path | None, batches: int = 16, seed: int = 0):
    """Feeds for a graph: conversations of the recorded training split of `data` (GCNet
    layout, as the bundle was trained on), or standard-normal features when no data is given."""
    if bundle.family.inputs.name != UTTERANCES:  # the feeds below are conversations
        raise ExportError(f"INT8 calibration builds conversation (utterance-input) feeds; {bundle.model['kind']} "
                          f"takes {bundle.family.inputs.name}: not implemented")
    specs = bundle.graphs[graph]["inputs"]
    names = {s["name"] for s in specs}
    if data is not None:
        from anymodal.train.data.gcnet import read_gcnet

        info = bundle.manifest["data"]
        ds = read_gcnet(data, info["dataset"], tuple(info["features"]))
        convs = ds.split_by(info["splits"]["train"])[:batches]
        samples = [{m: c.features[m][None] for m in MODALITIES} for c in convs]
    else:
        rng = np.random.default_rng(seed)
        samples = [{m: rng.standard_normal((1, 24, bundle.dims[m])).astype(np.float32) for m in MODALITIES}
                   for _ in range(batches)]
    for s in samples:
        L = s["a"].shape[1]
        feeds = {MODALITY_NAMES[m]: s[m].astype(np.float32) for m in MODALITIES if MODALITY_NAMES[m] in names}
        feeds["mask"] = np.ones((1, L), bool)
        if "avail" in names:
            feeds["avail"] = np.ones((1, L, 3), bool)
        yield feeds


def quantize_graph_qdq(src: Path, dst: Path, feeds) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self, it):
            self._it = iter(it)

        def get_next(self):
            return next(self._it, None)

    dst.parent.mkdir(parents=True, exist_ok=True)
    # Symmetric activations and weights: TensorRT's ONNX parser refuses Q/DQ with non-zero zero
    # points (ORT's default for activations is asymmetric, which ORT itself runs happily).
    quantize_static(str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["MatMul"],  # TensorRT INT8 pays off on the matmuls
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    bad = nonzero_zero_points(dst)
    if bad:
        raise ExportError(f"{dst}: {len(bad)} Q/DQ nodes with non-zero zero points ({', '.join(bad[:3])} …); "
                          "TensorRT accepts symmetric quantisation only")
    return dst


def nonzero_zero_points(path: Path) -> list[str]:
    """Names of Q/DQ nodes whose zero point is not all zeros (TensorRT builds none of them)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    bad = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is not None and np.any(numpy_helper.to_array(zp) != 0):
                bad.append(node.name)
    return bad
