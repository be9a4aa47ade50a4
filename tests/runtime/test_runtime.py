import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from anymodal.runtime import BundleError, InputError, Runtime
from anymodal.runtime.patterns import ALL_PATTERNS
from anymodal_testing.helpers import DIMS, LABELS


def request(L=5, B=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (L,) if B is None else (B, L)
    return {m: rng.standard_normal(shape + (d,)).astype(np.float32) for m, d in zip("atv", DIMS)}


def torch_probs(model, x, pattern, avail=None):
    L = x["a"].shape[0]
    t = [torch.from_numpy(x[m])[None] for m in "atv"]
    mask = torch.ones(1, L, dtype=torch.bool)
    if avail is None:
        avail = torch.tensor([m in pattern for m in "atv"]).expand(1, L, 3)
    with torch.no_grad():
        logits, _ = model(*t, mask, avail)
    return torch.softmax(logits, -1)[0].numpy()


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_pattern_inferred_from_given_modalities_and_matches_pytorch(small_bundle, small_model, pattern):
    x = request()
    rt = Runtime(small_bundle, backend="ort-cpu")
    kwargs = {name: (x[m] if m in pattern else None) for m, name in zip("atv", ("audio", "text", "visual"))}
    p = rt.predict(**kwargs)
    assert (p.pattern, p.graph, p.backend) == (pattern, pattern, "ort-cpu")
    np.testing.assert_allclose(p.probs, torch_probs(small_model, x, pattern), atol=1e-5)
    assert list(p.labels) == [LABELS[i] for i in p.probs.argmax(-1)]
    assert set(p.router_weights) == set(pattern)
    np.testing.assert_allclose(p.router_weights[pattern[0]].sum(-1), 1, atol=1e-5)


def test_varying_availability_routes_to_masked_graph(small_bundle, small_model):
    x = request(L=6)
    present = {"audio": np.array([1, 1, 0, 1, 0, 1], bool)}
    p = Runtime(small_bundle).predict(audio=x["a"], text=x["t"], present=present)
    assert p.graph == "masked" and p.pattern == "at"
    avail = torch.zeros(1, 6, 3, dtype=torch.bool)
    avail[0, :, 0] = torch.from_numpy(present["audio"])
    avail[0, :, 1] = True
    np.testing.assert_allclose(p.probs, torch_probs(small_model, x, None, avail), atol=1e-5)
    # utterances where audio was absent have no audio routing: weight 0, and `present` says so
    assert p.present["a"].tolist() == present["audio"].tolist() and p.present["t"].all()
    assert (p.router_weights["a"][~present["audio"]] == 0).all()
    np.testing.assert_allclose(p.router_weights["a"][present["audio"]].sum(-1), 1, atol=1e-5)
    np.testing.assert_allclose(p.router_weights["t"].sum(-1), 1, atol=1e-5)


def test_fully_absent_modality_in_present_mask_uses_specialised_graph(small_bundle):
    x = request(L=4)
    p = Runtime(small_bundle).predict(audio=x["a"], text=x["t"], present={"a": np.zeros(4, bool)})
    assert p.graph == "t"


def test_batched_request_with_lengths_matches_single_requests(small_bundle):
    rt = Runtime(small_bundle)
    xb = request(L=7, B=3)
    xb["a"][2, 4:] = np.nan  # padding may hold anything
    pb = rt.predict(audio=xb["a"], visual=xb["v"], lengths=[7, 5, 4])
    for b, n in enumerate([7, 5, 4]):
        ps = rt.predict(audio=xb["a"][b, :n], visual=xb["v"][b, :n])
        np.testing.assert_allclose(pb.probs[b, :n], ps.probs, atol=1e-5)
    assert pb.lengths["a"].tolist() == [7, 5, 4] and pb.present["a"].tolist()[2] == [True] * 4 + [False] * 3
    assert (pb.probs[2, 4:] == 0).all() and list(pb.labels[2, 4:]) == [""] * 3  # padding: nothing served


def test_lazy_loading_and_preload(small_bundle):
    rt = Runtime(small_bundle)
    assert rt.backend.loaded() == []
    rt.predict(text=request()["t"])
    assert rt.backend.loaded() == ["t"]
    assert len(Runtime(small_bundle, preload=True).backend.loaded()) == 8


@pytest.mark.parametrize("kwargs,match", [
    (dict(audio=np.zeros((2, 3, 4, 6), np.float32)), r"audio: expected \[L, 6\]"),
    (dict(text=np.zeros((5, 11), np.float32)), r"text: feature dim 11, the model expects 10"),
    (dict(visual=np.full((5, 8), np.inf, np.float32)), r"visual: NaN or Inf"),
    (dict(audio=np.zeros((0, 6), np.float32)), r"audio: empty sequence"),
    (dict(), r"all modalities are absent"),
    (dict(audio=np.array([["x"] * 6]), ), r"audio: dtype <U1"),
    (dict(audio=np.zeros((5, 6), np.int64)), r"audio: dtype int64; expected float16, float32 or float64"),
    (dict(audio=np.zeros((5, 6)), text=np.zeros((4, 10))), r"disagree"),
    (dict(audio=np.zeros((5, 6)), present={"audio": np.zeros(5, bool)}), r"nothing present"),
])
def test_bad_input_is_a_typed_error_naming_the_problem(small_bundle, kwargs, match):
    with pytest.raises(InputError, match=match):
        Runtime(small_bundle).predict(**kwargs)


def test_nan_where_sensor_absent_is_fine(small_bundle):
    x = request(L=3)
    x["a"][1] = np.nan
    p = Runtime(small_bundle).predict(audio=x["a"], text=x["t"], present={"a": np.array([1, 0, 1], bool)})
    assert np.isfinite(p.probs).all()


def _copy(bundle, tmp_path):
    import shutil

    return shutil.copytree(bundle, tmp_path / "copy")


def test_corrupted_graph_is_a_bundle_error_naming_the_file(small_bundle, tmp_path):
    b = _copy(small_bundle, tmp_path)
    with (b / "graphs" / "v.ort.onnx").open("r+b") as fh:  # the file ort-cpu serves for {v}
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    rt = Runtime(b)
    rt.predict(audio=request()["a"])  # other graphs are unaffected
    with pytest.raises(BundleError, match=r"v\.ort\.onnx: sha256 mismatch"):
        rt.predict(visual=request()["v"])


def test_missing_graph_and_corrupted_weights_are_bundle_errors(small_bundle, tmp_path):
    b = _copy(small_bundle, tmp_path)
    (b / "graphs" / "tv.ort.onnx").unlink()  # the file ort-cpu serves for {t,v}
    with pytest.raises(BundleError, match=r"tv\.ort\.onnx: missing"):
        Runtime(b).predict(text=request()["t"], visual=request()["v"])
    with (b / "graphs" / "weights.bin").open("r+b") as fh:
        fh.seek(64)
        fh.write(b"\xff" * 8)
    with pytest.raises(BundleError, match=r"weights\.bin: sha256 mismatch"):
        Runtime(b).predict(audio=request()["a"])
    with pytest.raises(BundleError, match="not an anymodal bundle"):
        Runtime(tmp_path / "nowhere")


def test_concurrent_predictions_equal_serial_ones(small_bundle):
    rt = Runtime(small_bundle, threads=1)
    jobs = [(p, request(L=3 + i % 5, seed=i)) for i, p in enumerate(ALL_PATTERNS * 4)]

    def call(job):
        pattern, x = job
        kwargs = {n: x[m] for m, n in zip("atv", ("audio", "text", "visual")) if m in pattern}
        return rt.predict(**kwargs).probs

    serial = [call(j) for j in jobs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(call, jobs))
    for s, p in zip(serial, parallel):
        np.testing.assert_array_equal(s, p)


def test_runtime_works_where_torch_cannot_be_imported(small_bundle):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from anymodal.runtime import Runtime
        rt = Runtime({str(small_bundle)!r}, backend="auto")
        p = rt.predict(audio=np.ones((4, {DIMS[0]}), np.float32), visual=np.ones((4, {DIMS[2]}), np.float32))
        assert p.pattern == "av" and p.probs.shape == (4, 4)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("ok", p.backend)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok ort-")
