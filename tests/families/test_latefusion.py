"""The late-fusion family of latefusion_family.py, end to end through code that does not know it:
train -> rt-eval's API -> export -> Runtime -> rt-report params -> rt-bench."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from anymodal.runtime import Runtime  # noqa: E402
from anymodal.runtime.families import family_names  # noqa: E402
from anymodal.train.checkpoint import load_run  # noqa: E402
from anymodal_testing import latefusion_family as lf  # noqa: E402  (importing it registers the family)


@pytest.fixture(scope="module")
def lf_run(tmp_path_factory):
    from anymodal.train.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("latefusion")
    data = generate(SynthConfig(conversations=60, dims=(12, 16, 8), seed=3), root / "data")
    return lf.train_latefusion_run(data, root / "run", epochs=25, hidden=32)


@pytest.fixture(scope="module")
def lf_bundle(lf_run, tmp_path_factory):
    from anymodal.export.api import export_run_folder

    return export_run_folder(lf_run, tmp_path_factory.mktemp("lfb") / "bundle", ("fp32", "fp16"))


def test_registered_beside_the_built_in_families():
    assert {"momke", "derl", lf.NAME} <= set(family_names())


def test_trains_and_evaluates_through_the_generic_api(lf_run):
    from anymodal.train.api import evaluate_run

    log = [json.loads(line) for line in (lf_run / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 25
    fitted = evaluate_run(lf_run, split="train")["conditions"]  # rt-eval's API, family-agnostic
    assert np.mean([m["wa"] for m in fitted.values()]) > 0.45  # learned (chance: 0.25)
    assert fitted["atv"]["wa"] >= max(fitted["a"]["wa"], fitted["v"]["wa"])  # fusing helps
    assert set(evaluate_run(lf_run, split="val")["conditions"]) == {"a", "t", "v", "at", "av", "tv", "atv"}


def test_exports_serves_and_matches_pytorch(lf_run, lf_bundle):
    mf = json.loads((lf_bundle / "manifest.json").read_text())
    assert mf["model"]["kind"] == lf.NAME and set(mf["parity"]["fp32"]) >= {"a", "atv", "masked"}
    model, _ = load_run(lf_run)
    rng = np.random.default_rng(0)
    x = {m: rng.standard_normal((5, d)).astype(np.float32) for m, d in zip("atv", model.cfg.input_dims)}
    rt = Runtime(lf_bundle, backend="ort-cpu")
    for pattern, present in (("tv", None), ("at", {"a": np.array([1, 0, 1, 1, 0], bool)})):
        p = rt.predict(**{n: x[m] for m, n in zip("atv", ("audio", "text", "visual")) if m in pattern},
                       present=present)
        avail = torch.tensor([[m in pattern for m in "atv"]] * 5)[None].clone()
        if present:
            avail[0, :, 0] = torch.from_numpy(present["a"])
        with torch.no_grad():
            logits, w = model(*[torch.from_numpy(x[m])[None] for m in "atv"], torch.ones(1, 5, dtype=torch.bool),
                              avail)
        assert p.family == lf.NAME and p.pattern == pattern
        assert p.graph == (pattern if present is None else "masked")
        np.testing.assert_allclose(p.probs, torch.softmax(logits, -1)[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(p.router_weights["fusion"], w[0].numpy(), atol=1e-6)
        assert json.dumps(p.to_dict())  # the same JSON form as every family


def test_no_conversation_refused_with_a_typed_error(lf_bundle):
    from anymodal.runtime.errors import ConversationError

    with Runtime(lf_bundle, backend="ort-cpu") as rt, pytest.raises(ConversationError, match="latefusion"):
        rt.conversation()


def test_params_report_and_rt_bench(lf_run, lf_bundle):
    from anymodal.bench.params import params_report, params_rows
    from anymodal.bench.run import run_bench

    rep = params_report(lf_bundle)
    assert rep["model"] == lf.NAME and rep["active"]["a"] < rep["active"]["atv"] == rep["served"]
    assert params_rows(rep)[1][0][0].startswith("total (incl. nothing training-only)")
    # in-process: this family is registered in the test's process only, rt-bench's worker
    # processes (its default) would not know it (they fail with a BenchWorkerError saying so)
    res = run_bench(["a,v"], lf_bundle, lf_run, "torch,ort-masked,ort", duration_s=0.1, warmup_s=0.05,
                    progress=lambda s: None, in_process=True)
    assert res["model"] == lf.NAME and set(res["variants"]) == {"torch", "ort-masked", "ort"}
    assert res["macs"] < res["variants"]["ort-masked"]["macs"]  # the specialised graph skips text
    assert all(v["latency_ms"]["p50"] > 0 for v in res["variants"].values())
