"""Static checks of the AOT artefacts TensorRT would load (docs/ARCHITECTURE.md §8), on CPU: PTX ISA
.version within what the oldest driver of each target JIT-compiles, the entry's .param count
equal to the arguments TensorRT's AOT launcher passes (inputs, 4 scalars, outputs), no TF32
instruction in any kernel, shared memory within the 48 KiB a launch gets without opt-in.
All fail on 73efad7 (PTX 9.4, 15 params, mma...tf32 on sm_87/sm_90)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

ARCHS = (72, 87, 90)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # AOT needs the compiler
    exe = os.path.join(os.path.dirname(sys.executable), "rt-kernels")
    res = subprocess.run([exe, "aot", "--out", str(out), "--arch", ",".join(map(str, ARCHS)),
                          "--dtype", "fp32,fp16", "--hidden", "256"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, json.loads((out / "index.json").read_text())["kernels"]


def test_every_target_and_dtype_was_compiled(artefacts):
    _, index = artefacts
    assert sorted((k["arch"], k["dtype"]) for k in index) == sorted(
        (f"sm_{a}", d) for a in ARCHS for d in ("fp32", "fp16"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_ptx_loads_where_tensorrt_runs_it(artefacts, arch, dtype):
    from anymodal.kernels.aot import PTX_VERSION_MAX, SHARED_MEM_STATIC_LIMIT, ptx_facts

    out, _ = artefacts
    stem = out / f"router_mix_kernel_sm{arch}_{dtype}_d256"
    meta = json.loads(stem.with_suffix(".json").read_text())
    facts = ptx_facts(stem.with_suffix(".ptx").read_text(), meta["kernel"])
    assert facts["version"] <= PTX_VERSION_MAX[arch], facts
    assert facts["target"].startswith(f"sm_{arch}")
    assert facts["params"] == len(meta["args"]) == 7 + 4 + 2, facts  # what TensorRT passes
    assert not facts["tf32"], f"TF32 instruction in the sm_{arch} {dtype} kernel"
    assert meta["shared_mem_bytes"] <= SHARED_MEM_STATIC_LIMIT


def test_ptx_facts_reads_versions_params_and_tf32():
    from anymodal.kernels.aot import ptx_facts, strip_scratch_params

    ptx = (".version 9.4\n.target sm_90a\n.entry k(\n\t.param .u64 k_param_0,\n\t.param .u32 k_param_1,\n"
           "\t.param .u64 k_param_2\n)\n{\n\tld.param.u64 %rd1, [k_param_0];\n"
           "\tmma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f1}, {%r1}, {%r2}, {%f2};\n}\n")
    assert ptx_facts(ptx, "k") == {"version": 94, "target": "sm_90a", "params": 3, "tf32": True}
    assert ptx_facts(strip_scratch_params(ptx, "k", 2), "k")["params"] == 2
    with pytest.raises(RuntimeError, match="reads its scratch parameter"):
        strip_scratch_params(ptx, "k", 0)
