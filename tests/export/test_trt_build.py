"""What of the TensorRT path a CPU can check: engine keys, optimisation profiles, INT8 QDQ
calibration; and the GPU-only build, skipped visibly here."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anymodal.export.calibration import graph_feeds, training_set
from anymodal.export.quantize import nonzero_zero_points, quantize_graph_qdq
from anymodal.export.trt_build import ProfileLimits, engine_key, profile_shapes
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import ExportError


def test_engine_key_names_arch_version_and_precision():
    assert engine_key((8, 7), "10.3.0", "fp16") == "sm87-trt10.3.0-fp16"
    assert engine_key((9, 0), "10.13.1", "int8") == "sm90-trt10.13.1-int8"
    assert engine_key((8, 7), "10.3.0", "fp16") != engine_key((8, 7), "10.7.0", "fp16")
    with pytest.raises(ExportError, match="bf8"):
        engine_key((8, 7), "10.3.0", "bf8")


def test_profiles_derived_from_bundle_input_specs(small_bundle):
    b = Bundle(small_bundle)
    shapes = profile_shapes(b, "av", ProfileLimits(max_batch=8, max_seq=128, opt_seq=24))
    assert shapes == {"audio": ((1, 1, 6), (1, 24, 6), (8, 128, 6)),
                      "visual": ((1, 1, 8), (1, 24, 8), (8, 128, 8)),
                      "mask": ((1, 1), (1, 24), (8, 128))}
    masked = profile_shapes(b, "masked")
    assert masked["avail"][2] == (16, 256, 3) and set(masked) == {"audio", "text", "visual", "mask", "avail"}


def test_int8_qdq_graph_runs_on_ort_and_stays_close(data_bundle, tmp_path):
    b = Bundle(data_bundle)
    cal = training_set(b, None)
    dst = quantize_graph_qdq(b.graph_path("t"), tmp_path / "t.onnx", graph_feeds(b, "t", cal, 256))
    ops = {n.op_type for n in onnx.load(str(dst), load_external_data=False).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert nonzero_zero_points(dst) == []  # TensorRT's parser accepts symmetric Q/DQ only
    feeds = next(graph_feeds(b, "t", cal, 256))
    q = ort.InferenceSession(str(dst)).run(None, feeds)
    f = ort.InferenceSession(str(b.graph_path("t"))).run(None, feeds)
    corr = np.corrcoef(q[0].ravel(), f[0].ravel())[0, 1]
    assert corr > 0.85, corr  # INT8 follows the fp32 logits (a broken scale gives ~0)
    assert np.abs(q[1] - f[1]).mean() < 0.05, np.abs(q[1] - f[1]).mean()  # router weights stay close


@pytest.mark.gpu
def test_build_engines_on_the_gpu(small_bundle, tmp_path):
    import shutil

    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    from anymodal.export.trt_build import build_engines

    out = build_engines(shutil.copytree(small_bundle, tmp_path / "bundle"), "fp16")
    assert (out / "atv.plan").stat().st_size > 0
