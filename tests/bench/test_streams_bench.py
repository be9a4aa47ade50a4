"""rt-bench streams (bench/streams.py): N live conversations through the Scheduler vs one turn
at a time, on the session's tiny causal bundle."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from anymodal.bench.streams import drop_schedule, run_streams_bench, streams_markdown, window_request
from anymodal.runtime import Runtime

BIN = os.path.dirname(sys.executable)


def test_drop_schedules_drop_and_return_sensors_and_keep_one():
    avail = drop_schedule(np.random.default_rng(0), 400)
    assert avail.any(axis=1).all()  # every turn has a sensor
    assert avail[0].all() and (~avail).any(axis=0).all()  # all report at first, each drops later
    returns = (avail[1:] & ~avail[:-1]).sum(axis=0)
    assert (returns > 0).all()  # sensors come back after dropping


@pytest.fixture(scope="module")
def result(causal_bundle):
    return run_streams_bench(causal_bundle, streams=(2, 3), turns=5, max_context=3, threads=1, request_rounds=2,
                             progress=lambda s: None)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_streams_bench_counts_every_turn_each_way(result, causal_bundle):
    assert result["mode"] == "stream" and result["turns_batched"] is True
    assert set(result["per_n"]) == {"2", "3"}
    one_stream = Runtime(causal_bundle).conversation(3).memory_bytes
    for key, r in result["per_n"].items():
        n = int(key)
        assert r["single"]["turns"] == 5
        assert r["one_by_one"]["turns"] == r["scheduler"]["turns"] == 5 * n
        assert r["throughput_ratio"] == pytest.approx(r["scheduler"]["turns_per_s"] / r["one_by_one"]["turns_per_s"])
        assert r["p99_over_single_p50"] == pytest.approx(r["scheduler"]["latency_ms"]["p99"]
                                                         / r["single"]["latency_ms"]["p50"])
        assert 1.0 <= r["scheduler"]["mean_batch"] <= n  # turns per step graph call
        mem = r["scheduler"]["memory"]
        assert mem["streams"] == n and mem["bytes"] == mem["bound_bytes"] == n * one_stream
        req = r["requests"]  # whole requests: every stream's window, twice, each way
        assert req["one_by_one"]["turns"] == req["scheduler"]["turns"] == 2 * n
        assert req["throughput_ratio"] == pytest.approx(req["scheduler"]["turns_per_s"]
                                                        / req["one_by_one"]["turns_per_s"])
        assert 1.0 <= req["scheduler"]["mean_batch"] <= n
    md = streams_markdown(result)
    assert "throughput_ratio" in md and "p99_over_single_p50" in md and "machine load" in md


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True, text=True)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_rt_bench_streams_cli_writes_json(causal_bundle, tmp_path):
    out = tmp_path / "s.json"
    res = run("rt-bench", "streams", "--streams", "2", "--bundle", str(causal_bundle), "--turns", "3", "--threads", "1",
              "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "rt-bench streams" in res.stdout and "throughput_ratio" in res.stdout
    got = json.loads(out.read_text())["per_n"]["2"]
    assert {"throughput_ratio", "p99_over_single_p50"} <= set(got) and got["scheduler"]["turns"] == 6
    res = run("rt-bench", "streams", "--streams", "0", "--bundle", str(causal_bundle))
    assert res.returncode == 2 and "--streams values must be >= 1" in res.stderr
    res = run("rt-bench", "streams", "--streams", "2", "--drop", "v@1-2", "--bundle", str(causal_bundle))
    assert res.returncode == 2 and "No such option: --drop" in res.stderr


def test_window_request_is_the_streams_turns_with_their_availability():
    plan = [{"audio": np.ones(2, np.float32), "text": None, "visual": None},
            {"audio": None, "text": np.full(3, 2.0, np.float32), "visual": None}]
    kw = window_request(plan)
    assert set(kw) == {"audio", "text", "present"} and kw["audio"].shape == (2, 2) and kw["text"].shape == (2, 3)
    assert kw["present"]["audio"].tolist() == [True, False] and kw["present"]["text"].tolist() == [False, True]
    assert (kw["audio"][1] == 0).all() and (kw["text"][1] == 2).all()
