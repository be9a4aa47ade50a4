import pytest

from anymodal.runtime.backends import AUTO_ORDER, BACKENDS, select_backend
from anymodal.runtime.backends.base import Backend
from anymodal.runtime.errors import BackendUnavailableError, InputError


class _Missing(Backend):
    name = "ort-cuda"

    @classmethod
    def available(cls):
        return False, "onnxruntime here lacks CUDAExecutionProvider (pip install 'anymodal[gpu]')"


class _Works(Backend):
    name = "ort-cpu"

    @classmethod
    def available(cls):
        return True, ""


def test_auto_prefers_gpu_and_falls_back_saying_why():
    cls, notes = select_backend("auto", {"ort-cuda": _Missing, "ort-cpu": _Works})
    assert cls is _Works
    assert notes[0].startswith("tensorrt: not available")
    assert "CUDAExecutionProvider" in notes[1]
    assert AUTO_ORDER.index("tensorrt") < AUTO_ORDER.index("ort-cuda") < AUTO_ORDER.index("ort-cpu")


def test_backend_named_explicitly_fails_loudly_with_install_hint():
    with pytest.raises(BackendUnavailableError, match=r"ort-cuda.*anymodal\[gpu\]"):
        select_backend("ort-cuda", {"ort-cuda": _Missing, "ort-cpu": _Works})


def test_unknown_backend_lists_choices():
    with pytest.raises(InputError, match="unknown backend 'cuda'.*ort-cpu"):
        select_backend("cuda")


def test_nothing_available_is_an_error():
    with pytest.raises(BackendUnavailableError, match="no backend can run here"):
        select_backend("auto", {"ort-cuda": _Missing})


def test_ort_cpu_is_available_here():
    assert BACKENDS["ort-cpu"].available() == (True, "")
