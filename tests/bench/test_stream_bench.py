"""rt-bench stream (bench/stream.py): drop schedules, the per-turn statistics, the whole run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from anymodal.bench.stream import (
    Drop,
    DropSpecError,
    availability,
    nearest_turns,
    parse_drops,
    run_stream_bench,
    stream_rows,
    stream_summary_lines,
    switch_cost,
    switch_turns,
    turn_estimate,
    turn_patterns,
)
from anymodal.runtime.errors import InputError

BIN = os.path.dirname(sys.executable)


def test_drop_spec_parses_modalities_ranges_and_single_turns():
    assert parse_drops("v@5-12,a@20-22", 30) == (Drop("v", 5, 12), Drop("a", 20, 22))
    assert parse_drops("visual@3, av@7 ,t@1-1", 10) == (Drop("v", 3, 3), Drop("av", 7, 7), Drop("t", 1, 1))
    assert parse_drops(None, 10) == () and parse_drops("", 10) == ()
    assert str(Drop("av", 7, 9)) == "av@7-9"


@pytest.mark.parametrize("spec, message", [
    ("x@5-12", "unknown modality 'x'"),
    ("v5-12", "expected MODALITY@FIRST-LAST"),
    ("v@12-5", "reversed range 12-5"),
    ("v@0-3", "outside the conversation's turns 1-30"),
    ("v@25-31", "outside the conversation's turns 1-30"),
    ("v@a-b", "are not FIRST-LAST or TURN"),
    ("v@5-", "are not FIRST-LAST or TURN"),
    ("v@5-12,", "expected MODALITY@FIRST-LAST"),
    ("@5-12", "empty pattern"),
])
def test_bad_drop_specs_are_typed_errors_naming_the_item(spec, message):
    with pytest.raises(DropSpecError, match=message) as info:
        parse_drops(spec, 30)
    assert isinstance(info.value, InputError)


def test_availability_patterns_and_switches():
    avail = availability(10, "atv", parse_drops("v@3-5,a@5-6", 10))
    pats = turn_patterns(avail)
    assert pats == ["atv", "atv", "at", "at", "t", "tv", "atv", "atv", "atv", "atv"]
    assert switch_turns(pats) == [3, 5, 6, 7]
    assert turn_patterns(availability(3, "a,v", ())) == ["av"] * 3
    with pytest.raises(DropSpecError, match=r"leaves turn 4 with no modality \(av@4-4 drop all of \{a,v\}\)"):
        availability(6, "av", parse_drops("av@4", 6))
    with pytest.raises(DropSpecError, match=r"turn 2 with no modality \(a@1-3, v@2-2"):
        availability(6, "av", parse_drops("a@1-3,v@2", 6))
    with pytest.raises(DropSpecError, match=r"t@2-3: text is not among the conversation's modalities \{a,v\}"):
        availability(6, "av", parse_drops("t@2-3", 6))


def test_turn_estimates_use_the_nearest_turns_of_one_pattern():
    pats = ["atv"] * 4 + ["at"] * 8 + ["atv"] * 8  # 20 turns, visual absent at turns 5-12
    assert nearest_turns(10, pats) == [8, 9, 10, 11, 12]
    assert nearest_turns(20, pats) == [16, 17, 18, 19, 20]  # clipped at the last turn
    # of the full pattern only: turn 10 sits in the drop; its nearest {a,t,v} turns are 13, 14, 15,
    # then 4 and 16 (both 6 away)
    assert nearest_turns(10, pats, "atv") == [4, 13, 14, 15, 16]
    assert nearest_turns(1, pats, "at", width=2) == [5, 6]
    assert nearest_turns(10, pats, "atv", exclude=(13,)) == [3, 4, 14, 15, 16]
    samples = np.tile(np.arange(1.0, 21.0), (3, 1))  # [R=3, L=20]: turn t costs t ms
    samples[1, 9] = 1000.0  # one outlier at turn 10 does not move the estimate
    assert turn_estimate(samples, [8, 9, 10, 11, 12]) == 10.0
    assert turn_estimate(samples, [8, 9, 10, 11, 12], np.min) == 8.0
    assert turn_estimate(samples, [4, 13, 14, 15, 16]) == 14.0


def test_switch_cost_compares_against_steady_turns_of_the_same_pattern():
    pats = ["atv"] * 4 + ["at"] * 4 + ["atv"] * 4 + ["a"] + ["atv"] * 3
    cost = {"atv": 3.0, "at": 2.0, "a": 1.0}
    samples = np.array([[cost[p] for p in pats]] * 2)  # [R=2, L=16]
    sw = switch_turns(pats)
    assert sw == [5, 9, 13, 14]
    for t in sw:
        samples[:, t - 1] += 0.25  # a switch costs 0.25 ms more than its pattern's steady turns
    res = switch_cost(samples, pats)
    # turn 13 ('a' for one turn) has no steady 'a' turn to compare with: skipped, and named
    assert res["skipped_turns"] == [13] and res["compared"] == 6
    assert res["extra_ms_p50"] == pytest.approx(0.25) and res["extra_ms_mean"] == pytest.approx(0.25)
    assert res["switch_turns"] == sw
    # a naive switch-vs-rest comparison would mix the patterns' own costs in
    assert res["steady_ms_p50"] == 3.0


@pytest.fixture(scope="module")
def stream_result(small_bundle):
    return run_stream_bench(small_bundle, turns=24, max_context=8, drops="v@3-5,a@9", repeats=2, threads=1,
                            progress=lambda s: None)


def test_stream_bench_measures_every_turn_both_ways(stream_result):
    res = stream_result
    assert res["benchmark"] == "stream" and res["turns"] == 24 and res["repeats"] == 2
    # the small bundle is bidirectional: the conversation re-scores its window (the fallback), named
    assert res["mode"] == "rescore" and res["causal"] is False
    assert res["drops"] == ["v@3-5", "a@9-9"] and res["base"] == "atv"
    pats = [r["pattern"] for r in res["per_turn"]]
    assert pats == ["atv", "atv", "at", "at", "at"] + ["atv"] * 3 + ["tv"] + ["atv"] * 15
    # the conversation's window: 8 utterances at most, the newest 4 kept when it is full
    assert [r["window"] for r in res["per_turn"]] == [1, 2, 3, 4, 5, 6, 7, 8] + [5, 6, 7, 8] * 4
    # rescore runs the masked graph while a window holds utterances without the camera
    assert [r["rescore_graph"] for r in res["per_turn"]][:3] == ["atv", "atv", "masked"]
    for way in ("stream", "rescore"):
        s = np.asarray(res["samples_ms"][way])
        assert s.shape == (2, 24) and (s > 0).all()
        lat = res["latency_ms"][way]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert res["flatness"][way]["ratio"] == pytest.approx(
            res["flatness"][way]["late_ms"] / res["flatness"][way]["early_ms"])
        assert [r[f"{way}_ms"] for r in res["per_turn"]] == pytest.approx(np.median(s, axis=0).tolist())
        floor = res["flatness"][way]["floor"]  # the min over the same passes × turns
        assert floor["late_ms"] == s[:, 19:24].min() and floor["early_ms"] <= res["flatness"][way]["early_ms"]
    assert res["flatness"]["early_turn"] == 10 and res["flatness"]["late_turn"] == 24
    assert res["speedup"]["turn"] == 24 and res["speedup"]["turns"] == [20, 21, 22, 23, 24]  # fewer than 50
    # flatness compares turns of the last turn's pattern: the early {a,t,v} turns nearest turn 10
    # (switch turns excluded: 6 and 10 start a pattern)
    assert res["flatness"]["pattern"] == "atv" and res["flatness"]["early_turns"] == [7, 8, 11, 12, 13]
    assert res["flatness"]["late_turns"] == [20, 21, 22, 23, 24]
    assert res["speedup"]["ratio"] == pytest.approx(res["speedup"]["rescore_ms"] / res["speedup"]["stream_ms"])
    fl = res["speedup"]["floor"]
    assert fl["ratio"] == pytest.approx(fl["rescore_ms"] / fl["stream_ms"])
    assert res["switch"]["switch_turns"] == [3, 6, 9, 10]
    # both ways score the same window with the same graphs here: identical outputs
    assert res["agreement_max_abs_diff"] <= 1e-6
    assert res["memory_bytes"] >= 8 * sum((6, 10, 8)) * 4  # the window's features, preallocated
    assert {"cpu", "cores", "timestamp"} <= set(res["machine"]) and "busy" in res["machine_load"]


def test_flatness_is_not_measured_without_separate_steady_turns(small_bundle):
    # {a,t,v} only at turns 1-2 and 12: its turns nearest turn 10 and nearest turn 12 overlap
    res = run_stream_bench(small_bundle, turns=12, drops="v@3-11", repeats=1, threads=1, progress=lambda s: None)
    assert res["flatness"]["stream"] is None and res["flatness"]["rescore"] is None
    assert stream_rows(res)[1][0][5:] == ["—"] * 3
    assert any(line.startswith("flatness: not measurable") for line in stream_summary_lines(res))


def test_stream_bench_checks_its_arguments_before_any_work(small_bundle):
    for kwargs, message in (({"turns": 1}, "--turns 1"), ({"repeats": 0}, "--repeats 0"),
                            ({"max_context": 0}, "--max-context 0"), ({"drops": "q@1"}, "unknown modality")):
        with pytest.raises(InputError, match=message):
            run_stream_bench(small_bundle, **{"turns": 10, **kwargs}, progress=lambda s: None)


def test_stream_report_table_and_plot(stream_result, tmp_path):
    from anymodal.bench.stream import plot_stream, stream_markdown

    header, rows = stream_rows(stream_result)
    assert header[-1] == "turn 24 / 10" and [r[0] for r in rows] == ["stream", "rescore"]
    lines = stream_summary_lines(stream_result)
    assert any("re-scores the window every turn (the fallback)" in line for line in lines)
    assert any(line.startswith("turn 24: stream") for line in lines)
    assert "| stream | rescore |" in stream_markdown(stream_result)
    png = plot_stream(stream_result, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True, text=True)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_rt_bench_stream_cli_writes_json_and_plot_beside_it(small_bundle, tmp_path):
    out = tmp_path / "s.json"
    res = run("rt-bench", "stream", "--bundle", str(small_bundle), "--turns", "6", "--repeats", "1",
              "--condition", "a,t", "--drop", "t@2-3", "--threads", "1", "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "rt-bench stream" in res.stdout and "pattern switch" in res.stdout
    got = json.loads(out.read_text())
    assert got["turns"] == 6 and got["drops"] == ["t@2-3"] and got["max_context"] == 6 and got["base"] == "at"
    assert [r["pattern"] for r in got["per_turn"]] == ["at", "a", "a", "at", "at", "at"]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    res = run("rt-bench", "stream", "--bundle", str(small_bundle), "--turns", "6", "--drop", "v@4-2")
    assert res.returncode == 2 and "DropSpecError: --drop item 'v@4-2': reversed range 4-2" in res.stderr
    # the latency comparison's options are not the stream's, and the stream's not the comparison's
    res = run("rt-bench", "stream", "--all-conditions", "--bundle", str(small_bundle))
    assert res.returncode == 2 and "No such option: --all-conditions" in res.stderr
    res = run("rt-bench", "--condition", "a", "--drop", "v@1-2", "--bundle", str(small_bundle))
    assert res.returncode == 2 and "No such option: --drop" in res.stderr


@pytest.fixture(scope="module")
def causal_bundle(tmp_path_factory):
    import torch

    from anymodal.export.bundle import write_bundle
    from anymodal.train.models.momke import MoMKE, MoMKEConfig
    from anymodal_testing.helpers import DIMS, run_config

    torch.manual_seed(0)
    model = MoMKE(MoMKEConfig(input_dims=DIMS, hidden=16, depth=1, heads=2, output_dim=4, causal=True)).eval()
    return write_bundle(model, run_config(), tmp_path_factory.mktemp("b") / "causal")


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_causal_bundle_streams_and_agrees_with_rescoring(causal_bundle):
    res = run_stream_bench(causal_bundle, turns=12, max_context=5, drops="a@2-3,tv@7", repeats=1, threads=1,
                           progress=lambda s: None)
    assert res["mode"] == "stream" and res["causal"] is True
    assert [r["window"] for r in res["per_turn"]] == [1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 3]
    # each streamed turn equals the causal full graph over the same window (evictions included)
    assert res["agreement_max_abs_diff"] <= 1e-4
    assert not any("fallback" in line for line in stream_summary_lines(res))
