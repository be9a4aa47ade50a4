"""rt-build against the fake tensorrt/pycuda (tests/support/anymodal_testing/fakes). Defects pinned here
(each fails on 73efad7): pycuda.autoinit left a private context current; engines.json never
protected an interrupted build; asymmetric Q/DQ refused by TensorRT's parser; device 0 and
a key without the device model."""

import json

import pytest

from anymodal.export.trt_build import build_engines


def quiet(*_):
    pass


def test_build_leaves_no_cuda_context_current(fake_gpu, bundle_copy):
    """Defect: `import pycuda.autoinit` made a non-primary context current for the process."""
    _, cuda = fake_gpu()
    build_engines(bundle_copy, "fp32", progress=quiet)
    assert cuda.Context.get_current() is None


def test_engines_json_records_device_profiles_and_hashes(fake_gpu, bundle_copy):
    trt, _ = fake_gpu()
    out = build_engines(bundle_copy, "fp32", progress=quiet)
    assert out.name == "sm90-nvidia-h100-80gb-hbm3-trt10.13.3-fp32"
    index = json.loads((out / "engines.json").read_text())
    assert index["device"] == "NVIDIA H100 80GB HBM3" and index["compute_capability"] == [9, 0]
    assert index["profiles"]["av"]["audio"] == [[1, 1, 6], [16, 256, 6]]
    assert set(index["engines"]) == set(json.loads((bundle_copy / "manifest.json").read_text())
                                        ["variants"]["fp32"]["graphs"])
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_interrupted_build_leaves_no_selectable_folder(fake_gpu, bundle_copy, monkeypatch):
    """Defect: plans were written into the final folder one by one; a crash left it selectable."""
    trt, _ = fake_gpu()
    real = trt.Builder.build_serialized_network
    calls = []

    def crash_on_third(self, network, config):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, network, config)

    monkeypatch.setattr(trt.Builder, "build_serialized_network", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_engines(bundle_copy, "fp32", progress=quiet)
    assert not (bundle_copy / "engines").exists() or not list((bundle_copy / "engines").iterdir())


def test_device_ordinal_from_environment(fake_gpu, bundle_copy, monkeypatch):
    """Defect: device 0 hard-coded; two devices of the same arch shared one key."""
    fake_gpu(devices=(("NVIDIA H100 80GB HBM3", (9, 0)), ("NVIDIA H100 PCIe", (9, 0))))
    monkeypatch.setenv("ANYMODAL_CUDA_DEVICE", "1")
    out = build_engines(bundle_copy, "fp32", progress=quiet)
    assert out.name.startswith("sm90-nvidia-h100-pcie-")


def test_int8_build_parses_symmetric_qdq(fake_gpu, data_bundle, tmp_path):
    """Defect: ORT's default asymmetric activations -> TensorRT's parser refused every INT8 build."""
    import shutil

    trt, _ = fake_gpu()
    out = build_engines(shutil.copytree(data_bundle, tmp_path / "b"), "int8", progress=quiet)
    assert (out / "t.plan").is_file() and trt.built[-1]["flags"] == [int(trt.BuilderFlag.INT8)]


@pytest.mark.slow
def test_tensorrt11_builds_strongly_typed_from_the_fp16_graphs(fake_gpu, fp16_bundle_src, tmp_path):
    import shutil

    trt, _ = fake_gpu(version="11.4.0")
    bundle = shutil.copytree(fp16_bundle_src, tmp_path / "b")
    out = build_engines(bundle, "fp16", progress=quiet)
    assert all(b["strongly_typed"] and b["flags"] == [] for b in trt.built)
    assert "/fp16/" in trt.built[0]["onnx"].replace("\\", "/")
    assert json.loads((out / "engines.json").read_text())["graph_precision"] == "fp16"


def test_build_needs_tensorrt_and_pycuda(fake_gpu, bundle_copy):
    from anymodal.runtime.errors import BackendUnavailableError

    fake_gpu(pycuda=False)
    with pytest.raises(BackendUnavailableError, match="pycuda"):
        build_engines(bundle_copy, "fp32", progress=quiet)


