"""rt-bench ab (bench/session_ab.py) on the tiny bundle, through the command (in-process), with
two short rounds: the lines it prints, the records it writes, and what it refuses before timing."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from anymodal.bench_cli import bench_app
from anymodal.runtime.errors import BundleError, InputError, PatternError

SHORT = ("--rounds", "2", "--seconds", "0.2", "--threads", "1")


def rt_bench(*args):
    return CliRunner().invoke(bench_app, list(args), prog_name="rt-bench")


def _check_records(got, graphs, batch, seq, compare):
    assert got["compare"] == compare and got["threads"] == 1 and got["rounds"] == 2 and got["cores"] >= 1
    assert got["cpu"] and [r["graph"] for r in got["records"]] == graphs
    for r in got["records"]:
        q = r["ratio"]
        assert (r["batch"], r["seq"], q["rounds"]) == (batch, seq, 2) and r["loadavg_1min"] >= 0
        assert 0 < q["lo"] <= q["median"] <= q["hi"] and r["base_p50_ms"] > 0 and r["new_p50_ms"] > 0


def test_executor_compare_prints_and_writes_one_record_per_graph(small_bundle, tmp_path):
    res = rt_bench("ab", "--compare", "executor", "--bundle", str(small_bundle), "--conditions", "a,masked",
                   "--batch", "2", "--seq", "3", *SHORT, "--json", str(tmp_path / "ab.json"))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].endswith(", 1 threads; base vs new = executor")
    assert [line.split(":")[0] for line in lines[1:]] == ["{a} B2×L3", "masked B2×L3"]
    assert all("base/new" in line and "n=2" in line for line in lines[1:])
    got = json.loads((tmp_path / "ab.json").read_text())
    assert got["bundle"] == str(small_bundle)
    _check_records(got, ["a", "masked"], 2, 3, "executor")


@pytest.fixture(scope="module")
def bundle_with_run(small_model, small_bundle, tmp_path_factory):
    """small_bundle's copy recording a run folder of the same weights (the rewrites path re-traces)."""
    from anymodal.train.checkpoint import save_run
    from anymodal_testing.helpers import run_config

    root = tmp_path_factory.mktemp("ab")
    save_run(root / "run", small_model, run_config())
    bundle = shutil.copytree(small_bundle, root / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "source_run": str(root / "run")}))
    return bundle


def test_rewrites_compare_retraces_the_copy_from_the_source_run(bundle_with_run, tmp_path):
    res = rt_bench("ab", "--compare", "rewrites", "--bundle", str(bundle_with_run), "--conditions", "at",
                   "--seq", "3", *SHORT, "--json", str(tmp_path / "ab.json"))
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].startswith("{a,t} B1×L3: base/new ")
    _check_records(json.loads((tmp_path / "ab.json").read_text()), ["at"], 1, 3, "rewrites")


def test_the_base_of_rewrites_is_the_copy_before_the_rewrites(bundle_with_run):
    import onnx

    from anymodal.bench.session_ab import _unrewritten_copy
    from anymodal.runtime.bundle import Bundle

    bundle = Bundle(bundle_with_run)
    base = onnx.load_from_string(_unrewritten_copy(bundle.manifest["source_run"], "at"))
    stored = onnx.load(str(bundle.ort_graph_path("at")), load_external_data=False)
    assert len(base.graph.node) > len(stored.graph.node)  # the shape plumbing the passes remove


def test_rewrites_without_source_run_is_refused_by_name(small_bundle):
    res = rt_bench("ab", "--compare", "rewrites", "--bundle", str(small_bundle), *SHORT)
    assert isinstance(res.exception, BundleError), res.output
    assert "no source_run in the manifest" in str(res.exception) and "--compare rewrites" in str(res.exception)


def test_bad_options_are_typed(small_bundle):
    for args, error, message in ((("--rounds", "0"), InputError, "--rounds must be >= 1, got 0"),
                                 (("--seconds", "0"), InputError, "--seconds must be > 0, got 0"),
                                 (("--batch", "0"), InputError, "--batch must be >= 1, got 0"),
                                 (("--threads", "0"), InputError, "--threads must be >= 1, got 0"),
                                 (("--conditions", "a,x"), PatternError, "unknown modality 'x'")):
        res = rt_bench("ab", "--compare", "executor", "--bundle", str(small_bundle), *args)
        assert isinstance(res.exception, error) and message in str(res.exception), (args, res.output)
    res = rt_bench("ab", "--compare", "sideways", "--bundle", str(small_bundle))
    assert res.exit_code == 2 and "sideways" in res.output  # not one of the listed choices
