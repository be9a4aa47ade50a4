"""AOT compilation for Jetson (sm_72, sm_87) and Hopper (sm_90) on this GPU-less machine."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")



def compile_aot(archs, out, dtypes, hidden):
    """Through the CLI in a fresh process: this one runs Triton's interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    exe = os.path.join(os.path.dirname(sys.executable), "rt-kernels")
    res = subprocess.run([exe, "aot", "--out", str(out), "--arch", ",".join(map(str, archs)),
                          "--dtype", ",".join(dtypes), "--hidden", str(hidden)],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "index.json").read_text())


def test_ptx_and_cubin_for_three_architectures(tmp_path):
    index = compile_aot([72, 87, 90], tmp_path, dtypes=("fp32",), hidden=128)
    assert [k["arch"] for k in index["kernels"]] == ["sm_72", "sm_87", "sm_90"]
    for arch in (72, 87, 90):
        stem = tmp_path / f"router_mix_kernel_sm{arch}_fp32_d128"
        ptx = stem.with_suffix(".ptx").read_text()
        assert f".target sm_{arch}" in ptx
        assert ".entry router_mix_kernel" in ptx
        cubin = stem.with_suffix(".cubin").read_bytes()
        assert cubin[:4] == b"\x7fELF"  # a CUDA binary is an ELF file
        meta = json.loads(stem.with_suffix(".json").read_text())
        assert meta["kernel"] == "router_mix_kernel"
        assert meta["threads_per_block"] == 32 * meta["num_warps"] > 0
        assert meta["shared_mem_bytes"] >= 0
        assert meta["constexprs"]["BLOCK_D"] == 128 and meta["constexprs"]["BLOCK_E"] == 16
        names = [a["name"] for a in meta["args"]]
        # TensorRT AOT plugins pass inputs, then integer scalars, then outputs
        assert names == ["x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr", "ex_ptr", "mask_ptr",
                         "N", "D", "E", "DO", "out_ptr", "wout_ptr"]
        assert [a["type"] for a in meta["args"]][6:11] == ["*i8", "i32", "i32", "i32", "i32"]
        assert meta["constexprs"]["INV_TEMP"] == 1.0
        assert meta["grid"].startswith("(ceil(N / 16)")


def test_fp16_variant_compiles(tmp_path):
    index = compile_aot([87], tmp_path, dtypes=("fp16",), hidden=100)
    meta = json.loads((tmp_path / f"{index['kernels'][0]['stem']}.json").read_text())
    assert meta["args"][0]["type"] == "*fp16" and meta["constexprs"]["BLOCK_D"] == 128
