"""rt-doctor on this CPU-only machine: exit 0, every backend with a reason, --json,
--require-gpu refusing, and --selftest skipping each GPU check with its reason. The console
script runs once as a process (the text report); the other modes run its app in-process."""

import json
import os
import subprocess
import sys

import pytest

from anymodal.selftest import BUDGET_S

EXE = os.path.join(os.path.dirname(sys.executable), "rt-doctor")


def _has_cuda():
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def run(*args):
    """rt-doctor's app in this process: the same options, exit status, stdout and stderr."""
    from typer.testing import CliRunner

    from anymodal.doctor_cli import app

    return CliRunner().invoke(app, list(args), prog_name="rt-doctor")


def test_report_json_names_every_backend_with_a_reason():
    res = run("--json")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert set(rep["backends"]) == {"tensorrt", "ort-trt", "ort-cuda", "ort-cpu"}
    assert rep["backends"]["ort-cpu"]["usable"]
    for b in [*rep["backends"].values(), *rep["tools"].values()]:
        assert b["usable"] or b["reason"], b
    assert rep["libraries"]["numpy"] and "onnxruntime" in rep["libraries"]


def test_text_report_exits_zero():
    res = subprocess.run([EXE], capture_output=True, text=True, timeout=300)  # the real console script
    assert res.returncode == 0 and "ort-cpu" in res.stdout and "usable" in res.stdout


@pytest.mark.skipif(_has_cuda(), reason="a GPU is present here")
def test_require_gpu_fails_without_one():
    res = run("--require-gpu")
    assert res.exit_code == 1 and "no CUDA GPU" in res.stderr


@pytest.mark.skipif(_has_cuda(), reason="a GPU is present here")
def test_selftest_skips_every_gpu_check_with_its_reason():
    res = run("--selftest", "--json")
    assert res.exit_code == 0, res.stderr
    results = json.loads(res.stdout)["selftest"]
    assert {r["check"] for r in results} >= {"triton-kernel-fp32", "aot-ptx-fp16", "ort-cuda", "trt-int8",
                                            "trt-masked-mixed", "trt-fused-plugin", "trt-streaming",
                                            "trt-memory-threads", "trt-tamper", "momke-cuda-vs-cpu"}
    *checks, budget = results
    for r in checks:
        assert r["status"] == "skipped" and r["detail"], r
    assert budget["check"] == "budget" and budget["status"] == "pass" and f"budget {BUDGET_S:g} s" in budget["detail"]
