"""GPU architectures and the AOT PTX ISA version. Triton's LLVM aborts the process
("PTX version 8.0 does not support target 'sm_100a'") when the pinned ISA predates the target,
so Blackwell gets the ISA of the first CUDA that knows it and an arch the table does not know
is refused with a typed error before Triton runs."""

import json
import os
import subprocess
import sys

import pytest

from anymodal.kernels import aot, trt_plugin
from anymodal.runtime.errors import UnsupportedArchError


@pytest.mark.parametrize("arch, isa", [(100, 87), (120, 87), (103, 88), (121, 88), (110, 90),
                                       (72, 74), (87, 82), (90, 80)])
def test_each_known_arch_has_an_isa_its_target_accepts(arch, isa):
    assert aot.ptx_version_for(arch) == isa


def test_unknown_arch_is_refused_before_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # any import of triton now fails
    with pytest.raises(UnsupportedArchError, match="sm_130"):
        aot.compile_one(130, "fp32", 64)
    with pytest.raises(UnsupportedArchError, match="predates sm_100"):
        aot.ptx_version_for(100, requested=80)


def test_unknown_arch_or_missing_triton_means_no_fused_kernel(monkeypatch):
    """kernel_fits answers (False, reason) instead of raising: rt-build goes on without the plugin."""
    monkeypatch.setitem(sys.modules, "triton", None)
    ok, why = trt_plugin.kernel_fits(130, 64)
    assert not ok and "sm_130" in why
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # else refused for the interpreter first
    ok, why = trt_plugin.kernel_fits(90, 64)  # known arch, no Triton
    assert not ok and "Triton is not installed" in why


def test_blackwell_compiles_in_a_fresh_process(tmp_path):
    """Through the CLI in its own process (this one runs Triton's interpreter; an LLVM abort
    would kill pytest): sm_100 and sm_120 compile, with the pinned ISA."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    exe = os.path.join(os.path.dirname(sys.executable), "rt-kernels")
    res = subprocess.run([exe, "aot", "--out", str(tmp_path), "--arch", "100,120", "--dtype", "fp32",
                          "--hidden", "64"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for k in json.loads((tmp_path / "index.json").read_text())["kernels"]:
        ptx = (tmp_path / f"{k['stem']}.ptx").read_text()
        facts = aot.ptx_facts(ptx, k["kernel"])
        assert facts["version"] == 87 and facts["target"] == f"{k['arch']}a" and facts["params"] == 13
