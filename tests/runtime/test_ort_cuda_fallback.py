"""ort-cuda is usable only when ORT really runs on CUDA. onnxruntime-gpu lists the
CUDA provider whenever it is installed and silently falls back to the CPU when CUDA/cuDNN
libraries cannot load; on 73efad7 the backend then still reported `ort-cuda`."""

import numpy as np
import onnxruntime as real_ort
import pytest

from anymodal.runtime.backends import ort as ort_backend
from anymodal.runtime.backends import select_backend
from anymodal.runtime.errors import BackendUnavailableError


class FakeSession:
    created = []

    def __init__(self, model, sess_options=None, providers=None):
        FakeSession.created.append(providers)
        self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if FakeOrt.cuda_loads \
            else ["CPUExecutionProvider"]  # what onnxruntime-gpu does without libcudnn
        self.fallback = True

    def get_providers(self):
        return self.providers

    def disable_fallback(self):
        self.fallback = False


class FakeOrt:
    cuda_loads = False
    InferenceSession = FakeSession
    SessionOptions = real_ort.SessionOptions
    GraphOptimizationLevel = real_ort.GraphOptimizationLevel

    @staticmethod
    def get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture
def fake_ort(monkeypatch):
    monkeypatch.setattr(ort_backend, "_ort", lambda: FakeOrt)
    monkeypatch.setattr(ort_backend, "_probe", {})
    monkeypatch.setattr(FakeOrt, "cuda_loads", False)
    FakeSession.created.clear()
    return FakeOrt


def test_listed_but_unloadable_cuda_is_not_available(fake_ort):
    ok, why = ort_backend.OrtCudaBackend.available()
    assert not ok and "fell back to CPUExecutionProvider" in why


def test_auto_falls_through_to_cpu_with_the_reason(fake_ort):
    registry = {"ort-cuda": ort_backend.OrtCudaBackend, "ort-cpu": ort_backend.OrtCpuBackend}
    cls, notes = select_backend("auto", registry)
    assert cls is ort_backend.OrtCpuBackend and any("fell back" in n for n in notes)


def test_working_cuda_is_available_on_the_chosen_device(fake_ort, monkeypatch):
    monkeypatch.setattr(FakeOrt, "cuda_loads", True)
    monkeypatch.setenv("ANYMODAL_CUDA_DEVICE", "1")
    assert ort_backend.OrtCudaBackend.available() == (True, "")
    assert FakeSession.created[-1][0] == ("CUDAExecutionProvider", {"device_id": 1})


def test_session_that_falls_back_at_load_is_refused(fake_ort, small_bundle):
    from anymodal.runtime.bundle import Bundle

    be = ort_backend.OrtCudaBackend(Bundle(small_bundle))
    with pytest.raises(BackendUnavailableError, match="fell back"):
        be.session("a")


def test_probe_model_is_a_valid_identity_graph():
    s = real_ort.InferenceSession(ort_backend.probe_model(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(s.run(None, {"x": np.array([2.5], np.float32)})[0], [2.5])
