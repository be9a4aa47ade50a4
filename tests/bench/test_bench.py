import json
import os
import subprocess
import sys

import numpy as np
import pytest

from anymodal.bench.run import run_bench
from anymodal.bench.timing import latency_stats, measure_interleaved
from anymodal.export.bundle import write_bundle
from anymodal.runtime.errors import InputError
from anymodal.runtime.families import get_family
from anymodal.train.checkpoint import save_run
from anymodal_testing.helpers import DERL_SHAPES, make_derl, make_model, run_config

LATENCY_KEYS = {"min", "mean", "p50", "p90", "p99", "max"}


@pytest.fixture(scope="module")
def bundle_and_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    model = make_model(hidden=32, depth=1)
    save_run(root / "run", model, run_config())
    write_bundle(model, {**run_config(), "source_run": str(root / "run")}, root / "bundle",
                 precisions=("fp32", "fp16"))
    return root / "bundle", root / "run"


def check_schema(obj, condition, gpu_requested=True, model="momke"):
    assert obj["condition"] == condition and obj["model"] == model
    assert isinstance(obj["batch"], int)
    if model == "momke":
        assert isinstance(obj["seq_len"], int)
    else:  # sequence-level: one length per modality
        assert obj["seq_len"] is None and set(obj["seq_lens"]) == {"audio", "text", "visual"}
    for name in ("torch", "ort-masked", "ort"):
        v = obj["variants"][name]
        assert set(v["latency_ms"]) == LATENCY_KEYS
        lat = v["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        rs = v["rounds"]  # the headline: median of the rounds' medians, with their range
        assert rs["count"] == len(rs["p50s"]) == obj["isolation"]["rounds"]
        assert rs["lo"] <= rs["p50"] <= rs["hi"] and rs["p50"] == pytest.approx(np.median(rs["p50s"]))
        assert v["throughput_per_s"] == pytest.approx(obj["batch"] * 1e3 / rs["p50"])
        assert v["gflops"] > 0
    for name in ("ort-cuda", "tensorrt") if gpu_requested else ():  # never silently dropped
        assert name in obj["variants"] or obj["absent"][name]
    p50s = {n: np.array(v["rounds"]["p50s"]) for n, v in obj["variants"].items()}
    # × = the median over rounds of the per-round ratio (both variants ran in every round)
    assert obj["speedup"]["ort_vs_torch"] == pytest.approx(np.median(p50s["torch"] / p50s["ort"]))
    assert obj["speedup"]["ort_vs_masked"] == pytest.approx(np.median(p50s["ort-masked"] / p50s["ort"]))
    spread = obj["speedup_spread"]["ort_vs_torch"]
    assert spread["lo"] <= obj["speedup"]["ort_vs_torch"] <= spread["hi"]
    assert 0 < obj["params"]["active"] <= obj["params"]["total"]
    assert obj["macs"] > 0 and obj["matmul_peak_gflops"] > 0
    assert obj["fraction_of_peak"] == pytest.approx(obj["variants"]["ort"]["gflops"] / obj["matmul_peak_gflops"])
    if obj["isolation"]["mode"] == "processes":  # anymodal's rows are timed without torch in the process
        assert obj["variants"]["ort"]["torch_imported"] is False
        assert obj["variants"]["torch"]["torch_imported"] is True
    assert set(obj["bundle_bytes"]) == {"fp32", "fp16"}
    assert obj["peak_rss_mb"] > 0
    assert {"cpu", "cores", "versions", "timestamp"} <= set(obj["machine"])


@pytest.mark.slow  # every variant incl. torch.compile of the reference (6-24 s); make test runs it
def test_single_condition_schema_and_ratios(bundle_and_run):
    bundle, run = bundle_and_run
    res = run_bench(["a,v"], bundle, None, "all", duration_s=0.1, warmup_s=0.05, progress=lambda s: None,
                    rounds=2)  # the schema and the per-round ratios, not figures: two rounds show both
    check_schema(res, "av")
    assert res["bundle_bytes"]["fp16"] > 0 and res["bundle_bytes"]["fp32"] > 0
    # weights halve; at this tiny size the (constant-folded fp32 vs unfolded fp16) graph protos,
    # not the weights, decide the total
    assert (bundle / "graphs/fp16/weights.bin").stat().st_size < (bundle / "graphs/weights.bin").stat().st_size


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_all_conditions_one_object_per_pattern(bundle_and_run):
    bundle, run = bundle_and_run
    res = run_bench("all", bundle, run, "torch,ort-masked,ort", duration_s=0.1, warmup_s=0.05,
                    progress=lambda s: None, rounds=3)
    assert list(res["conditions"]) == ["a", "t", "v", "at", "av", "tv", "atv"]
    for p, obj in res["conditions"].items():
        check_schema(obj, p, gpu_requested=False)


def test_macs_match_pytorch_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model(hidden=32, depth=2)
    for pattern in ("a", "tv", "atv"):
        B, L = 2, 9
        xs = [torch.randn(B, L, d) for d in model.cfg.input_dims]
        mask = torch.ones(B, L, dtype=torch.bool)
        spec = model.specialise(pattern)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            spec(*[xs["atv".index(m)] for m in pattern], mask)
        counted = fc.get_total_flops() // 2
        ours = get_family("momke").macs(model.cfg.to_dict(), pattern, B, L)
        # the counter skips the element-wise expert mixing (3·d per row); all else must agree
        mixing = B * L * len(pattern) * 3 * model.cfg.hidden
        # eager folds each LayerNorm shift into the next bias (β·W: Q/K/V and FFN-in of every
        # block of the 3 experts) every call; exported graphs hold the folded constants
        d, cfg = model.cfg.hidden, model.cfg
        fold = cfg.depth * 3 * (d * 3 * d + d * cfg.ffn_mult * d)
        assert ours - mixing == counted - fold, (pattern, ours, counted)


def test_interleaved_measurement_and_stats():
    calls = []
    res = measure_interleaved({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")},
                              warmup_s=0.0, duration_s=0.0, min_rounds=10)
    assert len(res["x"]) == len(res["y"]) == 10
    assert calls[:4] == ["x", "y", "y", "x"]  # order rotates every round
    s = latency_stats(np.array([1.0, 2.0, 3.0, 4.0]))
    assert s["p50"] == 2.5 and s["min"] == 1 and s["max"] == 4


@pytest.mark.slow
def test_rt_bench_cli_without_bundle_builds_default_and_writes_json(tmp_path):
    env = {**os.environ, "ANYMODAL_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out.json"
    exe = os.path.join(os.path.dirname(sys.executable), "rt-bench")
    # the default bundle is what this test is about; every variant ("all", reference-compiled's
    # torch.compile included) is covered on the small bundle by test_single_condition_schema_and_ratios
    res = subprocess.run([exe, "--condition", "a,v", "--batch", "1", "--json", str(out), "--duration-s", "0.2",
                          "--warmup-s", "0.05", "--rounds", "2", "--backend", "torch,ort-masked,ort", "--plot", str(tmp_path / "p.png"),
                          "--markdown", str(tmp_path / "r.md")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    obj = json.loads(out.read_text())
    check_schema(obj, "av", gpu_requested=False)
    assert 6e6 < obj["params"]["total"] < 7e6  # paper-sized MoMKE, paper preset (6.20 M)
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "| {a,v} |" in (tmp_path / "r.md").read_text()


def test_derl_macs_match_pytorch_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = make_derl(hidden=16)
    cfg = model.cfg.to_dict()
    for pattern in ("a", "tv", "atv"):
        B = 2
        xs = {m: torch.randn(B, T, D) for m, (T, D) in zip("atv", DERL_SHAPES)}
        masks = [torch.ones(B, xs[m].shape[1], dtype=torch.bool) for m in pattern]
        spec = model.specialise(pattern)  # computes the absent constants: not part of serving
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            spec(*[xs[m] for m in pattern], *masks)
        counted = fc.get_total_flops() // 2
        # the counter skips the element-wise expert and modality mixing; all else must agree
        E, d, N = 4, 16, cfg["bottleneck"]
        mixing = B * (len(pattern) * E * d * N + 6 * d * N)
        assert get_family("derl").macs(cfg, pattern, B, None) - mixing == counted, pattern


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_derl_bench_schema_and_seq_lengths(derl_bundle, derl_run):
    res = run_bench(["t"], derl_bundle, derl_run, "torch,ort-masked,ort", duration_s=0.1, warmup_s=0.05,
                    progress=lambda s: None, rounds=2)
    check_schema(res, "t", gpu_requested=False, model="derl")
    assert res["seq_lens"] == dict(zip(("audio", "text", "visual"), (t for t, _ in DERL_SHAPES)))
    assert res["variants"]["torch"]["macs"] > res["variants"]["ort"]["macs"]  # folded branches
    with pytest.raises(InputError, match="--seq-len applies to conversations of utterance-level models"):
        run_bench(["t"], derl_bundle, derl_run, "ort", seq_lens=(24,), progress=lambda s: None)
    with pytest.raises(InputError, match="holds a derl model"):
        run_bench(["t"], derl_bundle, derl_run, "ort", model="momke", progress=lambda s: None)
