"""INT8 engines calibrated on the training split the bundle records (or
--calib-data), never on random features; every engine checked against ONNX Runtime after the
build, a miss failing the build with EngineParityError naming the graph. Each test fails on the
code before this change (random calibration, no parity check)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anymodal.export import quantize
from anymodal.export.calibration import graph_feeds, training_set
from anymodal.export.engine_parity import ENGINE_TOLERANCE
from anymodal.export.trt_build import build_engines
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import CalibrationDataError, EngineParityError, MissingDependencyError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES


def quiet(*_):
    pass


@pytest.fixture
def data_copy(data_bundle, tmp_path):
    return shutil.copytree(data_bundle, tmp_path / "bundle")


def _data_root(bundle_dir) -> Path:
    run = Path(Bundle(bundle_dir).manifest["source_run"])
    return Path(json.loads((run / "config.json").read_text())["data"]["root"])


def _train_conversations(bundle_dir):
    from anymodal.train.data.gcnet import read_gcnet

    info = Bundle(bundle_dir).manifest["data"]
    ds = read_gcnet(_data_root(bundle_dir), info["dataset"], tuple(info["features"]))
    return ds.split_by(info["splits"]["train"])


def test_int8_calibrates_on_the_recorded_training_split(fake_gpu, data_copy, monkeypatch):
    """Defect: quantize_static was fed standard-normal features (calibration_feeds without data)."""
    fake_gpu()
    seen = {}
    real = quantize.quantize_graph_qdq

    def spy(src, dst, feeds):
        feeds = list(feeds)
        seen[dst.stem] = feeds
        return real(src, dst, feeds)

    monkeypatch.setattr(quantize, "quantize_graph_qdq", spy)
    out = build_engines(data_copy, "int8", progress=quiet)
    convs = _train_conversations(data_copy)
    assert set(seen) == set(Bundle(data_copy).graphs)
    for feeds, conv in zip(seen["atv"], convs):
        for m in MODALITIES:
            np.testing.assert_array_equal(feeds[MODALITY_NAMES[m]][0], conv.features[m].astype(np.float32))
    masked = np.concatenate([f["avail"][0] for f in seen["masked"]])
    assert len({tuple(r) for r in masked}) > 1  # the masked graph sees mixed availability
    index = json.loads((out / "engines.json").read_text())
    assert index["calibration"]["data"].startswith("train split of iemocap4")
    assert index["calibration"]["samples"] == len(seen["atv"])


def test_int8_without_training_data_is_refused(fake_gpu, bundle_copy):
    """Defect: no data -> silently calibrated on random features."""
    fake_gpu()
    with pytest.raises(CalibrationDataError, match="records no training split"):
        build_engines(bundle_copy, "int8", progress=quiet)
    assert not (bundle_copy / "engines").exists() or not any((bundle_copy / "engines").iterdir())


def test_int8_with_unreachable_training_data_asks_for_calib_data(fake_gpu, data_copy):
    fake_gpu()
    root = _data_root(data_copy)
    manifest = json.loads((data_copy / "manifest.json").read_text())
    manifest["source_run"] = str(data_copy / "no-such-run")
    (data_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CalibrationDataError, match="no reachable training run.*pass --calib-data"):
        build_engines(data_copy, "int8", progress=quiet)
    out = build_engines(data_copy, "int8", calib_data=root, progress=quiet)
    assert json.loads((out / "engines.json").read_text())["calibration"]["data"].startswith("train split")


def test_calib_data_folder_is_used_when_given(data_bundle, tmp_path):
    """--calib-data wins over the recorded run; a missing folder is an error, not a fallback."""
    moved = shutil.copytree(_data_root(data_bundle), tmp_path / "elsewhere")
    b = Bundle(data_bundle)
    assert len(training_set(b, moved).samples) == len(training_set(b, None).samples)
    with pytest.raises(CalibrationDataError, match="not a folder"):
        training_set(b, tmp_path / "missing")


def test_parity_recorded_per_graph_with_its_tolerance(fake_gpu, data_copy):
    fake_gpu()
    out = build_engines(data_copy, "fp16", progress=quiet)
    parity = json.loads((out / "engines.json").read_text())["parity"]
    assert parity["tolerance"] == ENGINE_TOLERANCE["fp16"]
    assert parity["data"].startswith("train split of iemocap4")
    assert set(parity["graphs"]) == set(Bundle(data_copy).graphs)
    assert all(g["max_error"] <= parity["tolerance"] and g["feeds"] > 0 for g in parity["graphs"].values())


def test_parity_without_data_says_random_features(fake_gpu, bundle_copy):
    fake_gpu()
    out = build_engines(bundle_copy, "fp32", progress=quiet)
    parity = json.loads((out / "engines.json").read_text())["parity"]
    assert parity["data"].startswith("random features") and parity["tolerance"] == ENGINE_TOLERANCE["fp32"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_engine_that_disagrees_fails_the_build_naming_the_graph(fake_gpu, data_copy, monkeypatch, precision):
    """A planted fault: the av engine adds 0.5 to its logits. Defect: no parity check, published."""
    trt, cuda = fake_gpu()
    real = trt.IExecutionContext.execute_async_v3

    def faulty(self, stream):
        ok = real(self, stream)
        if {t["name"] for t in self.engine.h["inputs"]} == {"audio", "visual", "mask"}:
            alloc, off = cuda.find(self.addresses["logits"])
            n = int(np.prod(self.get_tensor_shape("logits")))
            v = np.frombuffer(bytes(alloc.data[off:off + 4 * n]), np.float32) + 0.5
            alloc.data[off:off + 4 * n] = v.tobytes()
        return ok

    monkeypatch.setattr(trt.IExecutionContext, "execute_async_v3", faulty)
    with pytest.raises(EngineParityError, match=r"engine 'av' .*output 'logits'.*tolerance"):
        build_engines(data_copy, precision, progress=quiet)
    assert not (data_copy / "engines").exists() or not any((data_copy / "engines").iterdir())
    assert cuda.Context.get_current() is None


def test_calibration_feeds_cut_to_the_profile(data_bundle):
    b = Bundle(data_bundle)
    cal = training_set(b, None)
    assert all(f["mask"].shape[1] <= 2 for f in graph_feeds(b, "atv", cal, max_seq=2))


def test_int8_build_without_onnx_names_what_to_install(fake_gpu, data_copy, monkeypatch):
    """A Jetson has TensorRT and pycuda from JetPack, no onnx/onnxruntime."""
    import importlib.util

    fake_gpu()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in ("onnx", "onnxruntime") else real(n, *a))
    with pytest.raises(MissingDependencyError, match="pip install onnx onnxruntime"):
        build_engines(data_copy, "int8", progress=quiet)


def test_sequence_family_calibrated_and_checked_on_its_training_samples(fake_gpu, derl_bundle, tmp_path):
    """DERL (token sequences): its layout (MMSA) gives the training samples, its input kind the
    feeds, so INT8 calibrates on them and fp32 engines are parity-checked on them."""
    fake_gpu()
    path = shutil.copytree(derl_bundle, tmp_path / "b")
    out = build_engines(path, "fp32", progress=quiet)
    parity = json.loads((out / "engines.json").read_text())["parity"]
    assert parity["data"].startswith("train split of") and set(parity["graphs"]) == set(Bundle(path).graphs)
