"""INT8 through a calibrated QDQ ONNX graph (ONNX Runtime static quantisation): TensorRT
builds explicit-precision INT8 engines from the Q/DQ scales. Runs on CPU, so the calibration
and the accuracy of the quantised graph are checked here before any engine is built. The
calibration data is the bundle's training split (export/calibration.py), never random."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import ExportError

from .build_deps import require_build_libs

# ONNX MatMul is numpy's: B is [..., K, N] and N (the last axis) is the output channel. Scales
# along N factor out of sum_k x_k*w_kn, scales along K do not, so an INT8 GEMM can apply only
# the former. ORT's default MatMul channel axis is 1: right for 2-D [K, N], the reduction axis
# K for the experts' batched [E, K, N] weights. -1 is N at every rank.
WEIGHT_CHANNEL_AXIS = -1


def _data_files(src: Path) -> list[str]:
    """The external-data files the graph names (relative to its folder)."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    files = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            files.update(e.value for e in t.external_data if e.key == "location")
    return sorted(files)


def stage_copy(src: Path, work: Path) -> Path:
    """A copy of the graph and its weights in `work`: ORT's quantiser writes `<graph>-inferred.onnx`
    beside its input, which must not be the bundle's graphs folder. Copies, not links: onnx
    refuses external data with several hard links."""
    for name in [src.name, *_data_files(src)]:
        dst = work / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src.parent / name, dst)
    return work / src.name


def feed_reader(feeds):
    """ORT's CalibrationDataReader over `feeds` (an iterable of feed dicts), each read once."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self, it):
            self._it = iter(it)

        def get_next(self):
            return next(self._it, None)

    return _Reader(feeds)


def quantize_graph_qdq(src: Path, dst: Path, feeds) -> Path:
    require_build_libs("int8")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anymodal-qdq-") as work:
        # Symmetric activations and weights: TensorRT's ONNX parser refuses Q/DQ with non-zero
        # zero points (ORT's default for activations is asymmetric, which ORT itself runs happily).
        quantize_static(str(stage_copy(Path(src), Path(work))), str(dst), feed_reader(feeds), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=["MatMul"],  # TensorRT INT8 pays off on the matmuls
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "QDQOpTypePerChannelSupportToAxis": {"MatMul": WEIGHT_CHANNEL_AXIS}})
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
