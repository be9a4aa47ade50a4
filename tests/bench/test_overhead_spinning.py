"""rt-bench overhead (bench/overhead.py) and rt-bench spinning (bench/spinning.py) on the tiny
bundle, through the command (in-process), with few calls: the records they print and write."""

import json

from typer.testing import CliRunner

from anymodal.bench_cli import bench_app
from anymodal.runtime.errors import InputError


def rt_bench(*args):
    return CliRunner().invoke(bench_app, list(args), prog_name="rt-bench")


def test_overhead_splits_each_call_at_session_run(small_bundle, tmp_path):
    res = rt_bench("overhead", "--bundle", str(small_bundle), "--conditions", "a,atv", "--shapes", "1x3,2x4",
                   "--calls", "20", "--threads", "1", "--json", str(tmp_path / "o.json"))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("1-min load") and "1 threads" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["{a} B1×L3", "{a,t,v} B1×L3", "{a} B2×L4", "{a,t,v} B2×L4"]
    records = json.loads((tmp_path / "o.json").read_text())["records"]
    assert [(r["condition"], r["batch"], r["seq"], r["calls"]) for r in records] == [
        ("a", 1, 3, 20), ("atv", 1, 3, 20), ("a", 2, 4, 20), ("atv", 2, 4, 20)]
    for r in records:  # the outside part is the call less its timed session.run: positive, ordered
        o = r["outside_us"]
        assert 0 < o["min"] <= o["p10"] <= o["p50"] and r["session_run_p50_us"] > 0


def test_spinning_reports_latency_and_cpu_per_mode(small_bundle, tmp_path):
    res = rt_bench("spinning", "--bundle", str(small_bundle), "--condition", "a,v", "--blocks", "1",
                   "--gap-ms", "0", "--threads", "1", "--json", str(tmp_path / "s.json"))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("{a,v} B1, 1 threads, 40 requests per mode, gap 0 ms")
    assert [line.split(":")[0] for line in lines[1:]] == ["spinning off", "spinning on "]
    got = json.loads((tmp_path / "s.json").read_text())
    assert got["condition"] == "av" and got["requests"] == 40 and got["bundle"] == str(small_bundle)
    for mode in ("off", "on"):
        m = got[mode]
        assert 0 < m["min_ms"] <= m["p50_ms"] <= m["p90_ms"] and m["cpu_ms_per_request"] > 0


def test_bad_options_are_typed(small_bundle):
    for args, message in ((("overhead", "--shapes", "1x"), "--shapes takes BxL pairs"),
                          (("overhead", "--calls", "0"), "--calls must be >= 1"),
                          (("spinning", "--blocks", "0"), "--blocks must be >= 1")):
        res = rt_bench(*args, "--bundle", str(small_bundle))
        assert isinstance(res.exception, InputError) and message in str(res.exception), args
