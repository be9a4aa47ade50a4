"""Fixtures of the fake-TensorRT tests: fresh fakes per test, and bundles copied into the
test's own folder (engines are never written into the shared session bundle)."""

import shutil

import pytest

from anymodal_testing import fakes


@pytest.fixture
def fake_gpu(monkeypatch):
    """install(version=..., devices=...) -> (trt, cuda) fakes; the plugin's registration state
    is reset with them."""
    from anymodal.kernels import trt_plugin

    def make(version="10.13.3", devices=(("NVIDIA H100 80GB HBM3", (9, 0)),), **kw):
        monkeypatch.setattr(trt_plugin, "_state", {"registered": False, "arch": None}, raising=False)
        monkeypatch.setattr(trt_plugin, "_registered", set(), raising=False)
        return fakes.install(monkeypatch, version=version, devices=devices, **kw)

    return make


@pytest.fixture
def bundle_copy(small_bundle, tmp_path):
    return shutil.copytree(small_bundle, tmp_path / "bundle")


@pytest.fixture(scope="session")
def fp16_bundle_src(small_model, tmp_path_factory):
    """A bundle with fp16 graphs only (fp16 I/O: what TensorRT 11 builds fp16 engines from)."""
    from anymodal.export.bundle import write_bundle
    from anymodal_testing.helpers import run_config

    return write_bundle(small_model, run_config(), tmp_path_factory.mktemp("b16") / "bundle", ("fp16",))
