import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from anymodal_testing.console import run_console

BIN = os.path.dirname(sys.executable)
COMMANDS = ("rt-data", "rt-train", "rt-eval", "rt-export", "rt-run", "rt-bench", "rt-report",
            "rt-kernels", "rt-build")


def test_every_command_helps_without_torch_onnx_or_triton():
    code = textwrap.dedent("""
        import sys
        for mod in ("torch", "onnx", "triton", "safetensors", "tensorrt"):
            sys.modules[mod] = None  # import raises: only the runtime is installed
        from typer.testing import CliRunner
        import typer
        import anymodal.bench_cli as bench_cli
        import anymodal.cli as cli
        import anymodal.demo as demo
        import anymodal.doctor_cli as doctor_cli
        import anymodal.serve.cli as serve_cli
        runner = CliRunner()
        apps = [cli.data_app, cli.train_app, cli.eval_app, cli.export_app, cli.run_app, bench_cli.bench_app,
                cli.report_app, cli.kernels_app, cli.build_app, doctor_cli.app, serve_cli.serve_app, demo.demo_app]
        for app in apps:
            res = runner.invoke(app, ["--help"])
            assert res.exit_code == 0, res.output
            for sub in getattr(typer.main.get_command(app), "commands", ()):
                res = runner.invoke(app, [sub, "--help"])
                assert res.exit_code == 0, res.output
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_console_scripts_are_installed():
    for cmd in COMMANDS:
        assert os.path.exists(os.path.join(BIN, cmd)), cmd


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True, text=True)


def test_typed_errors_are_one_line_and_exit_2(tmp_path):
    res = run("rt-train", "momke", "--data", str(tmp_path), "--dataset", "iemocap9", "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert "DataError: unknown dataset 'iemocap9'" in res.stderr and "Traceback" not in res.stderr
    res = run("rt-bench", "--condition", "a,x")
    assert res.returncode == 2 and "unknown modality 'x'" in res.stderr


def test_rt_run_prints_pattern_and_backend(small_bundle, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 6), np.float32))
    np.save(tmp_path / "v.npy", np.ones((3, 8), np.float64))
    res = run("rt-run", "--bundle", str(small_bundle), "--audio", str(tmp_path / "a.npy"),
              "--visual", str(tmp_path / "v.npy"))
    assert res.returncode == 0, res.stderr
    assert "pattern av via graph av on ort-cpu" in res.stdout
    res = run("rt-run", "--bundle", str(small_bundle), "--text", str(tmp_path / "a.npy"))
    assert res.returncode == 2 and "text: feature dim 6, the model expects 10" in res.stderr
    res = run("rt-run", "--bundle", str(small_bundle), "--audio", str(tmp_path / "a.npy"), "--json")
    assert res.returncode == 0, res.stderr
    from anymodal.runtime import Runtime

    expected = Runtime(small_bundle).predict(audio=np.ones((3, 6), np.float32)).to_dict()
    got = json.loads(res.stdout)  # rt-run --json prints Prediction.to_dict()
    assert list(got) == list(expected) and got["pattern"] == "a" and got["family"] == "momke"
    np.testing.assert_allclose(got["outputs"]["probs"], expected["outputs"]["probs"], atol=1e-6)


@pytest.mark.slow
def test_train_export_report_pipeline_matches_eval(tmp_path):
    """rt-report accuracy (runtime) reproduces rt-eval (PyTorch) on the same run (each command
    in-process: a process per step would add a torch import each)."""
    import json

    assert run_console("rt-data", "synth", "--out", str(tmp_path / "d"), "--conversations", "30").returncode == 0
    res = run_console("rt-train", "momke", "--data", str(tmp_path / "d"), "--dataset", "iemocap4", "--out",
              str(tmp_path / "run"), "--hidden", "16", "--depth", "1", "--epochs-stage1", "2",
              "--epochs-stage2", "2", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert run_console("rt-eval", "--run", str(tmp_path / "run"), "--json", str(tmp_path / "e.json")).returncode == 0
    assert run_console("rt-export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "b")).returncode == 0
    res = run_console("rt-report", "accuracy", "--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "d"),
              "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "e.json").read_text())["conditions"]
    rep = json.loads((tmp_path / "r.json").read_text())["conditions"]
    assert set(ev) == set(rep) == {"a", "t", "v", "at", "av", "tv", "atv"}
    for p in ev:
        for k in ("wa", "ua", "f1"):
            assert abs(ev[p][k] - rep[p][k]) <= 0.005, (p, k)
    res = run_console("rt-report", "params", "--bundle", str(tmp_path / "b"))
    assert res.returncode == 0 and "active {a,t,v}" in res.stdout


@pytest.mark.slow
def test_derl_cli_pipeline_on_mosi_sized_synthetic_data(tmp_path):
    """rt-data synth --layout mmsa (MOSI-like 375x5 / 50x768 / 500x20) -> rt-train derl ->
    rt-eval (rates + conditions) -> rt-export -> rt-run -> rt-report params, in-process."""
    import json

    res = run_console("rt-data", "synth", "--layout", "mmsa", "--out", str(tmp_path / "d"), "--samples", "40")
    assert res.returncode == 0, res.stderr
    res = run_console("rt-train", "derl", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"),
              "--hidden", "16", "--heads", "2", "--epochs", "1", "--no-progress")
    assert res.returncode == 0, res.stderr
    res = run_console("rt-eval", "--run", str(tmp_path / "run"), "--json", str(tmp_path / "e.json"))
    assert res.returncode == 0 and "intra-modal missing" in res.stdout, res.stderr
    ev = json.loads((tmp_path / "e.json").read_text())
    assert list(ev["rates"]) == [f"{0.1 * i:.1f}" for i in range(10)] and len(ev["conditions"]) == 7
    assert run_console("rt-export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "b")).returncode == 0
    np.save(tmp_path / "t.npy", np.ones((50, 768), np.float32))
    res = run_console("rt-run", "--bundle", str(tmp_path / "b"), "--text", str(tmp_path / "t.npy"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pattern"] == "t"
    res = run_console("rt-report", "params", "--bundle", str(tmp_path / "b"))
    assert res.returncode == 0 and "total without text encoder" in res.stdout
    res = run_console("rt-train", "derl", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r2"), "--preset", "iemocap")
    assert res.returncode == 2 and "unknown --preset 'iemocap'" in res.stderr


def test_choices_are_enums_listed_by_help(small_bundle):
    def help_text(cmd, *sub):
        return subprocess.run([os.path.join(BIN, cmd), *sub, "--help"], capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "300"}).stdout

    assert "auto|tensorrt|ort-trt|ort-cuda|ort-cpu" in help_text("rt-run")
    assert "error|absent" in help_text("rt-run") and "gcnet|mmsa" in help_text("rt-data", "synth")
    assert "a t v at av tv atv" in help_text("rt-bench")
    res = run("rt-run", "--bundle", str(small_bundle), "--backend", "cuda")
    assert res.returncode == 2 and "'cuda' is not one of" in res.stderr
