"""Which file ort-cpu serves: the variant's ORT-optimised copy when the bundle has one and the
installed onnxruntime runs it, the portable graph otherwise or when asked; the manifest's
`ort_graphs` held to the hashed file table."""

import json
import shutil

import numpy as np
import onnxruntime
import pytest

from anymodal.runtime.backends.ort import OrtCpuBackend, OrtCudaBackend
from anymodal.runtime.bundle import MANIFEST, Bundle
from anymodal.runtime.errors import BundleError, InputError
from anymodal.runtime.runtime import Runtime
from anymodal_testing.helpers import DIMS


def _audio():
    return np.random.default_rng(0).standard_normal((5, DIMS[0])).astype(np.float32)


def test_ort_cpu_serves_the_copy_and_the_portable_graph_on_request(small_bundle):
    mf = json.loads((small_bundle / MANIFEST).read_text())
    copies = mf["variants"]["fp32"]["ort_graphs"]
    assert set(copies["graphs"]) == set(mf["variants"]["fp32"]["graphs"])
    assert copies["contrib_ops"] == ["com.microsoft::MultiHeadAttention"]
    assert set(mf["parity"]) >= {"fp32", "fp32-ort"}
    auto = OrtCpuBackend(Bundle(small_bundle), threads=1)
    portable = OrtCpuBackend(Bundle(small_bundle), threads=1, graphs="portable")
    assert auto.graph_file("a").name == "a.ort.onnx" and portable.graph_file("a").name == "a.onnx"
    feeds = {"audio": _audio()[None], "mask": np.ones((1, 5), bool)}
    for got, ref in zip(auto.run("a", feeds).values(), portable.run("a", feeds).values()):
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_gpu_providers_keep_the_portable_graph(small_bundle):
    backend = OrtCudaBackend(Bundle(small_bundle))
    assert backend.graph_flavour("a") == "portable"
    backend.graphs = "ort"
    with pytest.raises(Exception, match="portable graphs only"):
        backend.graph_flavour("a")


def test_an_older_onnxruntime_falls_back_or_refuses_with_the_version(small_bundle, monkeypatch):
    monkeypatch.setattr(onnxruntime, "__version__", "1.17.3")
    auto = OrtCpuBackend(Bundle(small_bundle), threads=1)
    assert auto.graph_file("a").name == "a.onnx"  # auto: the portable graph
    strict = OrtCpuBackend(Bundle(small_bundle), threads=1, graphs="ort")
    with pytest.raises(BundleError, match=r"need onnxruntime >= 1\.18\.0, this is 1\.17\.3"):
        strict.graph_file("a")


def test_a_bundle_without_copies_serves_the_portable_graph(small_bundle, tmp_path):
    b = shutil.copytree(small_bundle, tmp_path / "b")
    mf = json.loads((b / MANIFEST).read_text())
    del mf["variants"]["fp32"]["ort_graphs"]
    (b / MANIFEST).write_text(json.dumps(mf))
    rt = Runtime(b, backend="ort-cpu")
    assert rt.predict(audio=_audio()).pattern == "a"
    assert rt.backend.graph_file("a").name == "a.onnx"
    with pytest.raises(BundleError, match="no ORT-optimised copy of graph 'a'"):
        OrtCpuBackend(Bundle(b), graphs="ort").graph_file("a")


def test_unknown_choice_and_unhashed_copy_are_refused(small_bundle, tmp_path):
    with pytest.raises(InputError, match="graphs='fast'; choose auto, ort, portable"):
        OrtCpuBackend(Bundle(small_bundle), graphs="fast")
    b = shutil.copytree(small_bundle, tmp_path / "b")
    mf = json.loads((b / MANIFEST).read_text())
    mf["variants"]["fp32"]["ort_graphs"]["graphs"]["a"]["file"] = "graphs/elsewhere.onnx"
    (b / MANIFEST).write_text(json.dumps(mf))
    with pytest.raises(BundleError, match=r"ort_graphs/graphs/a: 'graphs/elsewhere.onnx' is not in the hashed"):
        Bundle(b)
