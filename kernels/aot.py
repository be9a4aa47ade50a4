"""Ahead-of-time compilation of RouterMix to PTX and cubin for given GPU architectures, on a
machine without a GPU (`triton.compile` with an explicit target), plus the launch metadata a
host (the TensorRT plugin) needs: grid, threads per block, shared memory, argument order.

Two things make Triton's default output unloadable by TensorRT's AOT plugin launcher:
* PTX ISA version. Triton writes the newest `.version` its bundled ptxas knows (9.x, CUDA 13),
  and a driver JIT-compiles only PTX up to its own CUDA version; QDP hands TensorRT PTX only.
  The version is pinned per target to the oldest CUDA the target runs (`PTX_VERSION_MAX`).
  A target this table does not know is refused (UnsupportedArchError) before Triton runs:
  Triton's LLVM aborts the whole process on a PTX version too old for the target
  ("PTX version 8.0 does not support target 'sm_100a'"), which no caller can catch.
* Parameter list. Triton >= 3.3 appends two scratch pointers (global and profile scratch) to
  every kernel; TensorRT passes exactly inputs + extra scalars + outputs. The two unused
  trailing parameters are removed from the PTX entry (refused when the kernel uses them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from anymodal.runtime.errors import UnsupportedArchError
from anymodal.runtime.jsonio import write_json

from .router_mix import KERNEL_NAME, aot_kernel, launch_config

TRITON_DTYPES = {"fp32": "*fp32", "fp16": "*fp16"}
SCALARS = {"N": "i32", "D": "i32", "E": "i32", "DO": "i32"}
MASK_TYPE = "*i8"  # the ONNX/TensorRT mask is bool, one byte per row
# PTX ISA (x.y = xy) per target: the highest the oldest supported driver of the target
# JIT-compiles, and at least the first ISA that knows the target (LLVM refuses older ones:
# sm_100a needs >= 8.6). CUDA -> ISA as Triton maps it (triton/backends/nvidia/compiler.py
# `ptx_get_version`, Triton 3.9: 12.x -> 80 + minor, minus 1 from 12.6; 13.x -> 90 + minor).
PTX_VERSION_MAX = {
    72: 74,  # Xavier: JetPack 5.1, CUDA 11.4
    70: 80, 75: 80, 80: 80, 86: 80, 89: 80, 90: 80,  # CUDA 12.0 drivers
    87: 82,  # Orin: JetPack 6.0, CUDA 12.2
    100: 87, 101: 87, 120: 87,  # Blackwell B200, Thor (pre-13 name), RTX 50: CUDA 12.8
    103: 88, 121: 88,  # B300, DGX Spark: CUDA 12.9
    110: 90,  # Thor: CUDA 13.0 (sm_101 renamed)
}
NUM_STAGES = 1  # no software pipelining of the K loop: keeps d = 512 under 48 KiB of shared memory
SHARED_MEM_STATIC_LIMIT = 48 * 1024  # above this a launch needs the dynamic-shared-memory opt-in,
# which TensorRT's AOT plugin launcher does not make


def ptx_version_for(arch: int, requested: int | None = None) -> int:
    """The PTX ISA to compile sm_<arch> with (`requested` overrides the table, not below it
    for a Blackwell-or-newer target). Raises UnsupportedArchError for a target the table does
    not know, rather than letting LLVM abort the process."""
    if arch not in PTX_VERSION_MAX:
        known = ", ".join(f"sm_{a}" for a in sorted(PTX_VERSION_MAX))
        raise UnsupportedArchError(f"no RouterMix kernel for sm_{arch}: its PTX ISA version is unknown to "
                                   f"this anymodal (known: {known}); the fused plugin is skipped")
    pinned = PTX_VERSION_MAX[arch]
    if requested is None:
        return pinned
    if arch >= 100 and requested < pinned:
        raise UnsupportedArchError(f"PTX ISA {requested // 10}.{requested % 10} predates sm_{arch} "
                                   f"(needs >= {pinned // 10}.{pinned % 10})")
    return requested


def kernel_args(sig: dict[str, str]) -> list[str]:
    """Names of the arguments a host passes, in order (constexprs are compiled in)."""
    return [n for n, t in sig.items() if t != "constexpr"]


def strip_scratch_params(ptx: str, kernel: str, n_args: int) -> str:
    """Drop the `.param`s of the entry past the first `n_args` (Triton's scratch pointers),
    refusing if the kernel body reads any of them."""
    m = re.search(r"(\.entry\s+" + re.escape(kernel) + r"\s*\()([^)]*)(\))", ptx)
    if m is None:
        raise RuntimeError(f"no .entry {kernel} in the PTX")
    params = [p for p in m.group(2).split(",") if p.strip()]
    extra = params[n_args:]
    for p in extra:
        name = p.split()[-1]
        if re.search(r"\[" + re.escape(name) + r"\]", ptx[m.end():]):
            raise RuntimeError(f"{kernel} reads its scratch parameter {name}: cannot drop it")
    body = ",".join(params[:n_args]).rstrip() + "\n"
    return ptx[:m.start(2)] + body + ptx[m.end(2):]


def ptx_facts(ptx: str, kernel: str) -> dict:
    """What the static checks read off a PTX file: ISA version, target, entry parameter count,
    whether any TF32 tensor-core instruction is used."""
    version = re.search(r"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.M)
    target = re.search(r"^\s*\.target\s+(\S+)", ptx, re.M)
    entry = re.search(r"\.entry\s+" + re.escape(kernel) + r"\s*\(([^)]*)\)", ptx)
    return {"version": int(version.group(1)) * 10 + int(version.group(2)) if version else None,
            "target": target.group(1) if target else None,
            "params": entry.group(1).count(".param") if entry else None,
            "tf32": bool(re.search(r"\btf32\b", ptx))}


def signature(dtype: str, constexprs: dict) -> dict[str, str]:
    k = aot_kernel()
    ptr = TRITON_DTYPES[dtype]
    sig = {}
    for name in k.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in SCALARS:
            sig[name] = SCALARS[name]
        elif name == "mask_ptr":
            sig[name] = MASK_TYPE
        else:
            sig[name] = ptr
    return sig


def compile_one(arch: int, dtype: str, hidden: int, out_dim: int | None = None,
                temperature: float = 1.0, ptx_version: int | None = None):
    """Compile for sm_<arch>; returns (ptx text, cubin bytes, metadata dict). The PTX has the
    pinned ISA version and exactly the parameters TensorRT's launcher passes."""
    ptx_version = ptx_version_for(arch, ptx_version)  # before Triton: its LLVM aborts on a bad pair
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # explicit, or triton.compile warns
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("AOT compilation cannot run in a process with TRITON_INTERPRET=1 "
                           "(the interpreter patches triton.language); use `rt-kernels aot`")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cfg = launch_config(1, hidden, out_dim or hidden, temperature)
    cfg.pop("grid")
    sig = signature(dtype, cfg)
    compiled = triton.compile(ASTSource(fn=aot_kernel(), signature=sig, constexprs=cfg),
                              target=GPUTarget("cuda", arch, 32), options={"ptx_version": ptx_version, "num_stages": NUM_STAGES})
    md = compiled.metadata
    if md.shared > SHARED_MEM_STATIC_LIMIT:
        raise RuntimeError(f"RouterMix at d={hidden} needs {md.shared} B of shared memory per block, above "
                           f"the {SHARED_MEM_STATIC_LIMIT} B a launch without the dynamic-shared-memory "
                           "opt-in gets (TensorRT's AOT launcher does not opt in)")
    args = kernel_args(sig)
    ptx = strip_scratch_params(compiled.asm["ptx"], md.name, len(args))
    meta = {
        "kernel": md.name, "arch": f"sm_{arch}", "dtype": dtype, "hidden": hidden,
        "out_dim": out_dim or hidden, "ptx_version": ptx_version, "num_warps": md.num_warps, "threads_per_block": 32 * md.num_warps,
        "shared_mem_bytes": md.shared, "grid": f"(ceil(N / {cfg['BLOCK_N']}), 1, 1)",
        "constexprs": cfg,
        "args": [{"name": n, "type": t} for n, t in sig.items() if t != "constexpr"],
    }
    return ptx, compiled.asm["cubin"], meta


def compile_aot(archs, out: str | Path, dtypes=("fp32",), hidden: int = 256,
                ptx_version: int | None = None) -> dict:
    """Write router_mix_<sm>_<dtype>_d<hidden>.{ptx,cubin,json} for each combination and an
    index.json listing them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for arch in archs:
        for dtype in dtypes:
            ptx, cubin, meta = compile_one(int(arch), dtype, hidden, ptx_version=ptx_version)
            stem = f"{KERNEL_NAME}_sm{arch}_{dtype}_d{hidden}"
            (out / f"{stem}.ptx").write_text(ptx)
            (out / f"{stem}.cubin").write_bytes(cubin)
            write_json(meta, out / f"{stem}.json")
            index.append({"stem": stem, **{k: meta[k] for k in ("arch", "dtype", "hidden", "kernel", "ptx_version")}})
    write_json({"kernels": index}, out / "index.json")
    return {"kernels": index}
