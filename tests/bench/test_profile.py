"""rt-bench profile: per-op tables of each served graph from ORT's profiler, with FLOPs,
GFLOP/s and % of a measured matmul peak. Schema and arithmetic only, no timing thresholds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from anymodal.bench.ort_peak import matmul_model
from anymodal.bench.profile import op_table, profile_bench
from anymodal.runtime.errors import ProfileError

RT_BENCH = os.path.join(os.path.dirname(sys.executable), "rt-bench")


def _event(cat, name, ts, dur=0, op=None):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, **({"args": {"op_name": op}} if op else {})}


def test_op_table_sums_kernel_times_per_op_after_the_warm_up():
    events = [_event("Session", "model_run", 0), _event("Node", "mm1_kernel_time", 1, 999, "MatMul"),
              _event("Session", "model_run", 10), _event("Node", "mm1_kernel_time", 11, 30, "MatMul"),
              _event("Node", "mm2_kernel_time", 12, 30, "MatMul"), _event("Node", "add_kernel_time", 13, 40, "Add"),
              _event("Node", "add_fence_before", 13, 500, "Add"),  # not a kernel time
              _event("Session", "model_run", 20), _event("Node", "mm1_kernel_time", 21, 50, "MatMul")]
    table = op_table(events, skip_runs=1)
    assert [r["op"] for r in table] == ["MatMul", "Add"]
    mm, add = table
    assert (mm["nodes"], mm["us"], add["nodes"], add["us"]) == (2, 55.0, 1, 20.0)  # 110 µs, 40 µs over 2 runs
    assert mm["share"] == pytest.approx(110 / 150) and add["share"] == pytest.approx(40 / 150)
    with pytest.raises(ProfileError, match="3 runs, 3 of them warm-up"):
        op_table(events, skip_runs=3)


def test_matmul_model_multiplies():
    import onnxruntime as ort

    sess = ort.InferenceSession(matmul_model(4), providers=["CPUExecutionProvider"])
    a, b = np.arange(16, dtype=np.float32).reshape(4, 4), np.eye(4, dtype=np.float32) * 2
    np.testing.assert_array_equal(sess.run(None, {"A": a, "B": b})[0], a @ b)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_profile_writes_a_table_per_served_graph(small_bundle, tmp_path):
    recs = profile_bench(small_bundle, "all", tmp_path, ((1, 6),), threads=1, calls=5, progress=lambda s: None)
    assert [r["graph"] for r in recs] == ["a", "t", "v", "at", "av", "tv", "atv", "masked"]
    for r in recs:
        assert r["file"] == f"{r['graph']}.ort.onnx"  # the copy ort-cpu serves
        assert sum(o["share"] for o in r["ops"]) == pytest.approx(1.0)
        assert r["kernel_us"] == pytest.approx(sum(o["us"] for o in r["ops"]))
        assert "MatMul" in {o["op"] for o in r["ops"]} and 0 < r["gemm_share"] < 1
        assert r["gflops"] == pytest.approx(r["mflop"] / r["run_ms"])
        assert r["best_gflops"] == pytest.approx(r["mflop"] / r["run_min_ms"]) and r["run_min_ms"] <= r["run_ms"]
        assert r["fraction_of_peak"] == pytest.approx(r["best_gflops"] / r["peak_gflops"])
        assert json.loads((tmp_path / f"{r['graph']}-B1xL6.json").read_text())["ops"] == r["ops"]
    assert recs[0]["mflop"] < recs[6]["mflop"] == recs[7]["mflop"]  # {a} < {a,t,v} = masked (all encoded)
    md = (tmp_path / "profile.md").read_text()
    assert md.count("| op | nodes | µs per run | share |") == 8 and "% of the ORT matmul peak" in md
    assert not list(tmp_path.glob("ort-*"))  # ORT's trace files are removed


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_rt_bench_profile_cli(small_bundle, tmp_path):
    out = tmp_path / "prof"
    res = subprocess.run([RT_BENCH, "profile", "--condition", "a,t", "--bundle", str(small_bundle), "--batch", "2",
                          "--seq-len", "5", "--threads", "1", "--out", str(out)],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})
    assert res.returncode == 0, res.stderr
    assert "graph at (at.ort.onnx) B2×L5:" in res.stdout and "% of the ORT matmul peak" in res.stdout
    assert (out / "at-B2xL5.json").is_file()
    bad = subprocess.run([RT_BENCH, "profile", "--condition", "a", "--bundle", str(small_bundle), "--rounds", "3",
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such option: --rounds" in bad.stderr + bad.stdout
