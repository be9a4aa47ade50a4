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


def test_auto_here_runs_ort_cpu_and_says_why_not_tensorrt(small_bundle):
    from anymodal.runtime import Runtime

    rt = Runtime(small_bundle, backend="auto")
    expected = "ort-cpu" if not BACKENDS["ort-cuda"].available()[0] else rt.backend_name
    assert rt.backend_name == expected  # this CPU machine: ort-cpu
    # every faster backend of the auto order that was skipped says why, in order
    skipped = AUTO_ORDER[:AUTO_ORDER.index(rt.backend_name)]
    assert [n.split(":")[0] for n in rt.backend_notes] == list(skipped)
    assert all(len(n.split(":", 1)[1].strip()) > 5 for n in rt.backend_notes)


def test_tensorrt_named_explicitly_without_it_fails_loudly(small_bundle):
    from anymodal.runtime import Runtime

    if BACKENDS["tensorrt"].available()[0]:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        Runtime(small_bundle, backend="tensorrt")


@pytest.mark.gpu
def test_tensorrt_backend_matches_ort(small_bundle, tmp_path):
    """Engines go into a copy: in the shared bundle they would make every later auto Runtime
    run TensorRT."""
    import shutil

    import numpy as np
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    from anymodal.export.trt_build import build_engines
    from anymodal.runtime import Runtime

    bundle = shutil.copytree(small_bundle, tmp_path / "bundle")
    build_engines(bundle, "fp32")
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    a = Runtime(bundle, backend="tensorrt").predict(audio=x)
    b = Runtime(bundle, backend="ort-cpu").predict(audio=x)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-3)
