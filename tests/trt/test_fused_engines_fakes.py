"""Fused bundles through the fake TensorRT, both ways TensorRT imports a RouterMix node
(docs/ARCHITECTURE.md §8): inlined from its ONNX local function when no plugin creator is
registered (TensorRT 10.3-10.8, or a kernel that does not fit), with onnx-tensorrt's rule that a
formal input named like an outer tensor reads the outer tensor; or as a plugin layer whose AOT
function is called at build time and whose kernel runs (emulated) at enqueue. Either way the
masked graph must zero the rows of absent modalities, as ONNX Runtime does."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from anymodal.export.trt_build import build_engines
from anymodal.runtime.backends.tensorrt import TensorRTBackend
from anymodal.runtime.bundle import Bundle


def quiet(*_):
    pass


def masked_feeds(B=3, L=7, seed=0):
    g = np.random.default_rng(seed)
    avail = g.random((B, L, 3)) < 0.5
    avail[:, 0] = [True, False, True]  # some rows with one modality absent, for sure
    return {"audio": g.standard_normal((B, L, 6)).astype(np.float32),
            "text": g.standard_normal((B, L, 10)).astype(np.float32),
            "visual": g.standard_normal((B, L, 8)).astype(np.float32),
            "mask": np.ones((B, L), bool), "avail": avail}


def ort_run(path, graph, feeds):
    s = ort.InferenceSession(str(Bundle(path).graph_path(graph)))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


@pytest.fixture
def fused_copy(fused_bundle, tmp_path):
    return shutil.copytree(fused_bundle, tmp_path / "bundle")


@pytest.fixture
def fake_aot(monkeypatch):
    """A compile_one that needs no Triton: what the plugin's AOT function gets back."""
    import anymodal.kernels.aot as aot

    calls = []

    def compile_one(arch, dtype, hidden, out_dim=None, temperature=1.0, ptx_version=None):
        calls.append((arch, dtype, hidden, out_dim, temperature))
        return ".version 8.0\n", b"", {"kernel": "router_mix_kernel", "threads_per_block": 128,
                                        "shared_mem_bytes": 16384}

    monkeypatch.setattr(aot, "compile_one", compile_one)
    return calls


def _check_masked(path, trt):
    be = TensorRTBackend(Bundle(path))
    for seed in range(3):
        f = masked_feeds(seed=seed)
        got, ref = be.run("masked", f), ort_run(path, "masked", f)
        for name in ("logits", "router_weights"):
            np.testing.assert_allclose(got[name], ref[name], atol=1e-5, err_msg=name)
    be.close()
    assert not [m for m in trt.Logger.messages if "outside scope name" in m]


@pytest.mark.parametrize("version", ["10.3.0", "10.13.3"])
def test_inlined_router_mix_zeroes_absent_rows(fake_gpu, fused_copy, version):
    """No creator registered (10.3: no QDP at all; 10.13: the kernel did not fit): the parser
    inlines the local function. With formals named `mask`/`x` the inlined body read the graph's
    `mask` instead of `mask & avail[m]`: absent rows were not zeroed."""
    trt, _ = fake_gpu(version)
    out = build_engines(fused_copy, "fp32", progress=quiet)
    index = json.loads((out / "engines.json").read_text())
    assert index["plugin"] is False and index["plugin_graphs"] == []
    assert not any(b["plugins"] for b in trt.built)
    _check_masked(fused_copy, trt)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_registered_plugin_is_built_and_run(fake_gpu, fused_copy, fake_aot):
    """TensorRT >= 10.9 with the plugin registered: every fused graph has plugin layers, the AOT
    function is called at build time (by position, all attributes) and the kernel it names
    runs with the scalars its expressions give; results equal ONNX Runtime's."""
    trt, _ = fake_gpu("10.13.3")
    out = build_engines(fused_copy, "fp32", progress=quiet)
    index = json.loads((out / "engines.json").read_text())
    assert index["plugin"] is True and index["plugin_registered"] is True
    assert set(index["plugin_graphs"]) == set(index["engines"])  # every graph has a RouterMix
    layers = [p for b in trt.built for p in b["plugins"]]
    assert layers and {p["kernel"] for p in layers} == {"router_mix_kernel"}
    assert all(p["attrs"] == {"temperature": 1.0, "plugin_namespace": "anymodal"} for p in layers)
    assert fake_aot[-1][1:] == ("fp32", 16, 16, 1.0)  # d = do = 16 for the small model
    _check_masked(fused_copy, trt)


def test_standard_bundle_records_no_plugin(fake_gpu, bundle_copy, fake_aot):
    """index["plugin"] said "registered", not "used": a standard bundle has no RouterMix node."""
    fake_gpu("10.13.3")
    out = build_engines(bundle_copy, "fp32", progress=quiet)
    index = json.loads((out / "engines.json").read_text())
    assert index["plugin_registered"] is True and index["plugin"] is False
