"""ort-trt (ONNX Runtime's TensorRT provider): provider options (engine cache in the
bundle, fp16 from the variant's precision, the chosen device) and a session that fell back from
TensorRT refused by name. Fails on the backend before the fix, which passed bare provider names
and served whatever provider ORT kept."""

import onnxruntime as real_ort
import pytest

from anymodal.runtime.backends import ort as ort_backend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import BackendUnavailableError


class FakeSession:
    created = []
    loads = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    def __init__(self, model, sess_options=None, providers=None):
        FakeSession.created.append(providers)
        # ORT keeps the providers whose libraries load, in the order asked
        self.providers = [p if isinstance(p, str) else p[0] for p in providers]
        self.providers = [p for p in self.providers if p in FakeSession.loads]

    def get_providers(self):
        return self.providers

    def disable_fallback(self):
        pass

    def get_inputs(self):
        return []

    def get_outputs(self):
        return []


class FakeOrt:
    InferenceSession = FakeSession
    SessionOptions = real_ort.SessionOptions
    GraphOptimizationLevel = real_ort.GraphOptimizationLevel


@pytest.fixture
def fake_ort(monkeypatch):
    monkeypatch.setattr(ort_backend, "_ort", lambda: FakeOrt)
    FakeSession.created.clear()
    monkeypatch.setattr(FakeSession, "loads", FakeSession.loads)
    return FakeSession


@pytest.mark.parametrize("precision, fp16", [("fp32", False), ("fp16", True)])
def test_provider_options(fake_ort, small_bundle, tmp_path, monkeypatch, precision, fp16):
    import shutil

    path = shutil.copytree(small_bundle, tmp_path / "b")
    monkeypatch.setenv("ANYMODAL_CUDA_DEVICE", "1")
    be = ort_backend.OrtTensorRTBackend(Bundle(path, "fp32"))
    be.bundle.precision = precision  # the options follow the variant served
    be._load_impl(Bundle(path).graph_path("a"))
    (trt, opts), cuda = fake_ort.created[-1][0], fake_ort.created[-1][1]
    assert trt == "TensorrtExecutionProvider" and opts["trt_fp16_enable"] is fp16
    assert opts["device_id"] == 1 and cuda == ("CUDAExecutionProvider", {"device_id": 1})
    assert opts["trt_engine_cache_enable"] is True
    cache = path / "engines" / f"ort-trt-{precision}"
    assert opts["trt_engine_cache_path"] == str(cache) and cache.is_dir()


def test_session_without_tensorrt_is_refused(fake_ort, small_bundle, tmp_path):
    import shutil

    path = shutil.copytree(small_bundle, tmp_path / "b")
    fake_ort.loads = ("CUDAExecutionProvider", "CPUExecutionProvider")  # libnvinfer missing
    be = ort_backend.OrtTensorRTBackend(Bundle(path))
    with pytest.raises(BackendUnavailableError, match="fell back to CUDAExecutionProvider.*TensorRT"):
        be._load_impl(Bundle(path).graph_path("a"))
