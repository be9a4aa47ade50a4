"""Ahead-of-time compilation of RouterMix to PTX and cubin for given GPU architectures, on a
machine without a GPU (`triton.compile` with an explicit target), plus the launch metadata a
host (the TensorRT plugin) needs: grid, threads per block, shared memory, argument order."""

from __future__ import annotations

import os
from pathlib import Path

from anymodal.runtime.jsonio import write_json

from .router_mix import KERNEL_NAME, aot_kernel, launch_config

TRITON_DTYPES = {"fp32": "*fp32", "fp16": "*fp16"}
SCALARS = {"N": "i32", "D": "i32", "E": "i32", "DO": "i32"}
MASK_TYPE = "*i8"  # the ONNX/TensorRT mask is bool, one byte per row


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
                temperature: float = 1.0):
    """Compile for sm_<arch>; returns (ptx text, cubin bytes, metadata dict)."""
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
                              target=GPUTarget("cuda", arch, 32))
    md = compiled.metadata
    meta = {
        "kernel": md.name, "arch": f"sm_{arch}", "dtype": dtype, "hidden": hidden,
        "out_dim": out_dim or hidden, "num_warps": md.num_warps, "threads_per_block": 32 * md.num_warps,
        "shared_mem_bytes": md.shared, "grid": f"(ceil(N / {cfg['BLOCK_N']}), 1, 1)",
        "constexprs": cfg,
        "args": [{"name": n, "type": t} for n, t in sig.items() if t != "constexpr"],
    }
    return compiled.asm["ptx"], compiled.asm["cubin"], meta


def compile_aot(archs, out: str | Path, dtypes=("fp32",), hidden: int = 256) -> dict:
    """Write router_mix_<sm>_<dtype>_d<hidden>.{ptx,cubin,json} for each combination and an
    index.json listing them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for arch in archs:
        for dtype in dtypes:
            ptx, cubin, meta = compile_one(int(arch), dtype, hidden)
            stem = f"{KERNEL_NAME}_sm{arch}_{dtype}_d{hidden}"
            (out / f"{stem}.ptx").write_text(ptx)
            (out / f"{stem}.cubin").write_bytes(cubin)
            write_json(meta, out / f"{stem}.json")
            index.append({"stem": stem, **{k: meta[k] for k in ("arch", "dtype", "hidden", "kernel")}})
    write_json({"kernels": index}, out / "index.json")
    return {"kernels": index}
