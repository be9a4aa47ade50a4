"""TensorRT older than 10 (JetPack 6.0 ships 8.6, whose create_network(0) is an implicit-batch
network the ONNX parser refuses) is refused up front with the reason, by rt-build and by the
backend, and `auto` falls through. Fails on the code before the gate: it built and served on
8.6 as if it were 10."""

import pytest

from anymodal.export.trt_build import build_engines
from anymodal.runtime import Runtime
from anymodal.runtime.backends.tensorrt import TensorRTBackend
from anymodal.runtime.backends.trt_keys import tensorrt_version_problem
from anymodal.runtime.errors import BackendUnavailableError


def test_rt_build_refuses_tensorrt_8(fake_gpu, bundle_copy):
    fake_gpu(version="8.6.2")
    with pytest.raises(BackendUnavailableError, match=r"TensorRT 8\.6\.2 is older than 10\.0.*JetPack >= 6\.1"):
        build_engines(bundle_copy, "fp16", progress=lambda *_: None)
    assert not (bundle_copy / "engines").exists()


def test_backend_unavailable_on_tensorrt_8_and_auto_falls_through(fake_gpu, bundle_copy):
    fake_gpu(version="8.6.2")
    ok, why = TensorRTBackend.available()
    assert not ok and "older than 10.0" in why
    rt = Runtime(bundle_copy, backend="auto")
    assert rt.backend.name != "tensorrt"
    assert any(n.startswith("tensorrt:") and "older than 10.0" in n for n in rt.backend_notes)


@pytest.mark.parametrize("version, refused", [("8.6.2", True), ("9.3.0", True), ("10.0.1", False),
                                              ("10.3.0", False), ("11.4.0", False)])
def test_version_gate(version, refused):
    assert (tensorrt_version_problem(version) is not None) == refused
