"""DERL bundles: per-pattern graphs with the absent branches folded, verified parity, and the
runtime serving them (specialised and per-token masked), torch-free."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from anymodal.runtime import Runtime  # noqa: E402
from anymodal.runtime.errors import ExportError, InputError  # noqa: E402
from anymodal.train.checkpoint import load_run  # noqa: E402
from anymodal_testing.helpers import DERL_SHAPES  # noqa: E402

NAMES = {"a": "audio", "t": "text", "v": "visual"}


def _sample(batch, seed):
    rng = np.random.default_rng(seed)
    x = {m: rng.standard_normal((batch, T + 3, D)).astype(np.float32) for m, (T, D) in zip("atv", DERL_SHAPES)}
    lengths = {m: rng.integers(1, x[m].shape[1] + 1, batch) for m in "atv"}
    return x, lengths


def _torch(model, x, lengths, pattern, present=None):
    """PyTorch: the full model, absent modalities as the absent-sensor input."""
    B = len(next(iter(lengths.values())))
    args = {}
    for m in "atv":
        if m in pattern:
            mask = torch.from_numpy(np.arange(x[m].shape[1])[None] < lengths[m][:, None])
            avail = mask & torch.from_numpy(present[m]) if present and m in present else mask
            args[m] = (torch.from_numpy(x[m]), mask, avail)
        else:
            args[m] = model.absent_input(m, B)
    with torch.no_grad():
        score, w = model(*[args[m][i] for i in range(3) for m in "atv"])
    return score[:, 0].numpy(), w.numpy()


def test_manifest_records_parity_and_specialised_inputs(derl_bundle):
    mf = json.loads((derl_bundle / "manifest.json").read_text())
    assert mf["model"]["kind"] == "derl"
    assert set(mf["parity"]["fp32"]) == {"a", "t", "v", "at", "av", "tv", "atv", "masked"}
    assert max(r["max_error"] for r in mf["parity"]["fp32"].values()) <= 1e-4
    graphs = mf["variants"]["fp32"]["graphs"]
    assert [i["name"] for i in graphs["tv"]["inputs"]] == ["text", "visual", "text_mask", "visual_mask"]
    assert len(graphs["masked"]["inputs"]) == 9


@pytest.mark.slow
def test_fp16_variant_within_relative_tolerance(derl_run, tmp_path):
    from anymodal.export.api import export_run_folder

    # fp16 alone: its parity is against PyTorch, the fp32 graphs' against the session bundle's
    mf = json.loads((export_run_folder(derl_run, tmp_path / "b", ("fp16",)) / "manifest.json").read_text())
    assert set(mf["parity"]["fp16"]) == {"a", "t", "v", "at", "av", "tv", "atv", "masked"}
    assert max(r["max_error"] for r in mf["parity"]["fp16"].values()) <= 1e-2


def test_absent_branches_are_folded_out_of_the_graphs(derl_bundle):
    def matmuls(g):
        m = onnx.load(str(derl_bundle / "graphs" / f"{g}.onnx"), load_external_data=False)
        return sum(n.op_type == "MatMul" for n in m.graph.node)

    assert matmuls("t") < matmuls("at") < matmuls("atv")  # no branch runs on constants
    assert matmuls("a") == matmuls("t") == matmuls("v")


@pytest.mark.parametrize("pattern", ["a", "t", "tv", "atv"])
def test_runtime_specialised_graphs_match_pytorch(derl_bundle, derl_run, pattern):
    model, _ = load_run(derl_run)
    x, lengths = _sample(4, seed=len(pattern))
    rt = Runtime(derl_bundle)
    p = rt.predict(**{NAMES[m]: x[m] for m in pattern}, lengths={m: lengths[m] for m in pattern})
    ref, w = _torch(model, x, lengths, pattern)
    assert p.graph == pattern and p.scores.shape == (4,)
    np.testing.assert_allclose(p.scores, ref, atol=1e-4)
    np.testing.assert_allclose(p.router_weights["fusion"], w, atol=1e-5)
    one = rt.predict(**{NAMES[m]: x[m][0, :lengths[m][0]] for m in pattern})  # unbatched [T, dim]
    assert one.scores.shape == () and abs(float(one.scores) - ref[0]) < 1e-4


def test_per_token_missingness_runs_the_masked_graph(derl_bundle, derl_run):
    model, _ = load_run(derl_run)
    x, lengths = _sample(3, seed=9)
    rng = np.random.default_rng(0)
    present = {m: rng.random(x[m].shape[:2]) < 0.5 for m in "at"}
    x["a"][~present["a"]] = np.nan  # missing tokens may hold anything
    rt = Runtime(derl_bundle)
    p = rt.predict(audio=x["a"], text=x["t"], lengths={m: lengths[m] for m in "at"}, present=present)
    assert p.graph == "masked" and p.pattern == "at"
    ref, _ = _torch(model, {**x, "a": np.nan_to_num(x["a"])}, lengths, "at", present)
    np.testing.assert_allclose(p.scores, ref, atol=1e-4)


def test_bad_requests_name_what_is_wrong(derl_bundle):
    rt = Runtime(derl_bundle)
    (Ta, Da), (Tt, Dt), _ = DERL_SHAPES
    with pytest.raises(InputError, match=r"text: feature dim 7, the model expects 32"):
        rt.predict(text=np.zeros((5, 7)))
    with pytest.raises(InputError, match=r"lengths\[audio\]: expected lengths in 1..4"):
        rt.predict(audio=np.zeros((2, 4, Da)), lengths={"a": [0, 9]})
    with pytest.raises(InputError, match=r"present\[visual\] given but no visual array"):
        rt.predict(audio=np.zeros((4, Da)), present={"v": np.ones(4, bool)})
    with pytest.raises(InputError, match=r"text: NaN or Inf .*at batch 0, token 2"):
        rt.predict(text=np.where(np.arange(6)[:, None] == 2, np.nan, 0.0) + np.zeros((6, Dt)))
    with pytest.raises(InputError, match="modalities disagree on the batch size"):
        rt.predict(audio=np.zeros((2, 4, Da)), text=np.zeros((3, 4, Dt)))
    with pytest.raises(InputError, match="all modalities are absent"):
        rt.predict()


def test_fused_kernels_are_refused_for_derl(derl_run, tmp_path):
    from anymodal.export.api import export_run_folder

    with pytest.raises(ExportError, match="derl has no RouterMix-shaped routers"):
        export_run_folder(derl_run, tmp_path / "b", kernels="fused")


def test_runtime_report_matches_rt_eval(derl_bundle, derl_run, derl_data):
    from anymodal.bench.accuracy import accuracy_report
    from anymodal.train.api import evaluate_run

    served, trained = accuracy_report(derl_bundle, derl_data), evaluate_run(derl_run)
    for section in ("conditions", "rates"):
        for key, metrics in trained[section].items():
            for name, value in metrics.items():
                assert abs(served[section][key][name] - value) <= 0.005, (section, key, name)


def test_derl_runtime_works_where_torch_cannot_be_imported(derl_bundle):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        import numpy as np
        from anymodal.runtime import Runtime
        rt = Runtime({str(derl_bundle)!r})
        p = rt.predict(visual=np.ones((9, {DERL_SHAPES[2][1]}), np.float32))
        assert p.pattern == "v" and p.scores.shape == ()
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_tensorrt_profiles_and_int8_calibration_for_derl(derl_bundle):
    from anymodal.export.calibration import graph_feeds, training_set
    from anymodal.export.trt_build import profile_shapes
    from anymodal.runtime.bundle import Bundle

    b = Bundle(derl_bundle)
    shapes = profile_shapes(b, "masked")
    (Ta, Da), (Tt, _), (Tv, _) = DERL_SHAPES
    assert shapes["audio"] == ((1, 1, Da), (1, Ta, Da), (16, Ta, Da))
    assert shapes["text_avail"] == ((1, 1), (1, Tt), (16, Tt)) and shapes["visual_mask"][2] == (16, Tv)
    cal = training_set(b, None)  # the MMSA layout reads the pickle's train split
    assert cal.source.startswith("train split of") and len(cal.samples) > 1
    names = [s["name"] for s in b.graphs["masked"]["inputs"]]
    for graph in ("masked", "t"):
        feeds = next(graph_feeds(b, graph, cal, 256))
        assert list(feeds) == [s["name"] for s in b.graphs[graph]["inputs"]]
    feeds = next(graph_feeds(b, "masked", cal, 256))
    assert list(feeds) == names and feeds["audio"].shape[1] == feeds["audio_avail"].shape[1]
    assert not feeds["audio_avail"].all() or not feeds["text_avail"].all()  # mixed availability
