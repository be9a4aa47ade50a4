"""rt-doctor --selftest: every GPU check whose libraries are present, each pass / fail / skip
with the reason; a last `budget` row fails when the whole run took more than BUDGET_S on one GPU.

  triton-kernel-{fp32,fp16}   compiled RouterMix kernel vs the numpy reference, odd shapes, d <= 512
  momke-cuda-vs-cpu           MoMKE forward on CUDA (Triton RouterMix) vs the CPU path
  aot-ptx-{fp32,fp16}         the AOT PTX (pinned .version, 13 params) loaded by this driver and
                              launched with TensorRT's argument list, vs the reference
  ort-cuda                    ORT's CUDA provider really on CUDA, outputs equal to ORT CPU
  trt-*                       the TensorRT checks (anymodal/selftest_trt.py): builds per precision,
                              masked graph with mixed availability, fused bundle's plugin layers,
                              streaming re-scoring, threads and memory, tampered plans
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from . import selftest_trt
from .selftest_bundles import Bundles, Skip, small_momke

BUDGET_S = 300  # the whole self-test on one GPU (at most five minutes: docs/ARCHITECTURE.md §10)
TOL = {"fp32": dict(atol=1e-5, rtol=1e-4), "fp16": dict(atol=2e-2, rtol=2e-2)}
KERNEL_SHAPES = ((1, 100, 3), (17, 128, 6), (1000, 256, 3), (33, 512, 6), (5, 64, 16), (250, 37, 2))


def _torch_cuda():
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed") from None
    if not torch.cuda.is_available():
        raise Skip("no CUDA device visible to torch")
    return torch


def _triton():
    try:
        import triton  # noqa: F401
    except ImportError:
        raise Skip("triton is not installed") from None


def _kernel_inputs(N, D, E, np_dtype, seed=0, DO=None):
    g = np.random.default_rng(seed)
    DO = DO or D
    a = dict(x=g.standard_normal((N, D)), w1=g.standard_normal((D, D)) / np.sqrt(D),
             b1=g.standard_normal(D) * 0.1, w2=g.standard_normal((D, E)) / np.sqrt(D),
             b2=g.standard_normal(E) * 0.1, experts=g.standard_normal((N, E, DO)))
    a = {k: v.astype(np_dtype) for k, v in a.items()}
    mask = (g.random(N) > 0.2).astype(np.float32)
    return a, mask


def _max_err(got, ref, tol):
    err = np.abs(got.astype(np.float64) - ref)
    bad = int(np.sum(err > tol["atol"] + tol["rtol"] * np.abs(ref)))
    return float(err.max()), bad


def check_triton_kernel(dtype: str) -> str:
    torch = _torch_cuda()
    _triton()
    from anymodal.kernels.reference import router_mix_reference
    from anymodal.kernels.router_mix import router_mix

    tdt, ndt = (torch.float32, np.float32) if dtype == "fp32" else (torch.float16, np.float16)
    worst = 0.0
    for N, D, E in KERNEL_SHAPES:
        a, mask = _kernel_inputs(N, D, E, ndt)
        t = {k: torch.from_numpy(v).to("cuda", tdt) for k, v in a.items()}
        out, w = router_mix(t["x"], t["w1"], t["b1"], t["w2"], t["b2"], t["experts"], 1.3,
                            torch.from_numpy(mask).cuda())
        torch.cuda.synchronize()
        ref_out, ref_w = router_mix_reference(*(a[k] for k in ("x", "w1", "b1", "w2", "b2", "experts")), 1.3, mask)
        for name, got, ref in (("mixed", out, ref_out), ("weights", w, ref_w)):
            err, bad = _max_err(got.float().cpu().numpy(), ref, TOL[dtype])
            assert bad == 0, f"N={N} d={D} E={E} {name}: {bad} values outside {TOL[dtype]} (max abs err {err:.3g})"
            worst = max(worst, err)
    return f"{len(KERNEL_SHAPES)} shapes up to d=512, max abs err {worst:.2e} (tol {TOL[dtype]})"


def check_momke_cuda_vs_cpu() -> str:
    torch = _torch_cuda()
    _triton()
    model = small_momke()
    g = torch.Generator().manual_seed(1)
    B, L = 3, 11
    inputs = [torch.randn(B, L, d, generator=g) for d in (6, 10, 8)]
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 7:] = False
    avail = torch.rand(B, L, 3, generator=g) > 0.3
    with torch.no_grad():
        cpu_logits, cpu_w = model(*inputs, mask, avail)
        gpu = model.cuda()
        gpu_logits, gpu_w = gpu(*(x.cuda() for x in inputs), mask.cuda(), avail.cuda())
    err = float((gpu_logits.cpu() - cpu_logits).abs().max())
    werr = float((gpu_w.cpu() - cpu_w).nan_to_num().abs().max())
    assert err < 1e-4 and werr < 1e-4, f"logits max abs err {err:.3g}, router weights {werr:.3g} (limit 1e-4)"
    return f"logits max abs err {err:.2e}, router weights {werr:.2e}"


def _launcher():
    """A way to load PTX and launch it with an explicit argument list: cupy, else pycuda."""
    try:
        import cupy

        return "cupy", cupy
    except ImportError:
        pass
    try:
        import pycuda.driver

        return "pycuda", pycuda.driver
    except ImportError:
        raise Skip("neither cupy nor pycuda is installed (needed to load PTX with the driver)") from None


def check_aot_ptx(dtype: str) -> str:
    torch = _torch_cuda()
    _triton()
    import os
    import subprocess
    import sys

    kind, lib = _launcher()
    if kind != "cupy":
        raise Skip("PTX launch is implemented through cupy only")
    major, minor = torch.cuda.get_device_capability()
    arch, D, E, N = major * 10 + minor, 256, 6, 77
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env["PYTHONSAFEPATH"] = "1"  # the working directory never shadows installed packages
        code = ("import sys, json; from anymodal.kernels.aot import compile_aot; "
                f"compile_aot([{arch}], sys.argv[1], ('{dtype}',), {D})")
        res = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr[-1500:]
        import json

        stem = Path(tmp) / f"router_mix_kernel_sm{arch}_{dtype}_d{D}"
        meta = json.loads(stem.with_suffix(".json").read_text())
        from anymodal.kernels.aot import ptx_facts

        facts = ptx_facts(stem.with_suffix(".ptx").read_text(), meta["kernel"])
        cp = lib
        module = cp.RawModule(path=str(stem.with_suffix(".ptx")))  # the driver JIT-compiles the PTX
        fn = module.get_function(meta["kernel"])
    ndt = np.float32 if dtype == "fp32" else np.float16
    a, mask = _kernel_inputs(N, D, E, ndt, seed=3)
    dev = {k: cp.asarray(v) for k, v in a.items()}
    dmask = cp.asarray(mask.astype(np.int8))
    out = cp.zeros((N, D), ndt)
    w = cp.zeros((N, E), ndt)
    i32 = np.int32
    # TensorRT's AOT launcher: inputs, the extra integer scalars, outputs — 13 arguments
    args = (dev["x"], dev["w1"], dev["b1"], dev["w2"], dev["b2"], dev["experts"], dmask,
            i32(N), i32(D), i32(E), i32(D), out, w)
    assert len(args) == facts["params"], f"PTX entry takes {facts['params']} params, TensorRT passes {len(args)}"
    block_n = meta["constexprs"]["BLOCK_N"]
    fn(((N + block_n - 1) // block_n, 1, 1), (meta["threads_per_block"], 1, 1), args,
       shared_mem=meta["shared_mem_bytes"])
    cp.cuda.Device().synchronize()
    from anymodal.kernels.reference import router_mix_reference

    inv = meta["constexprs"]["INV_TEMP"]
    ref_out, ref_w = router_mix_reference(*(a[k] for k in ("x", "w1", "b1", "w2", "b2", "experts")), 1 / inv, mask)
    for name, got, ref in (("mixed", out, ref_out), ("weights", w, ref_w)):
        err, bad = _max_err(cp.asnumpy(got), ref, TOL[dtype])
        assert bad == 0, f"{name}: {bad} values outside {TOL[dtype]} (max abs err {err:.3g})"
    return (f"sm_{arch} PTX .version {facts['version'] / 10:.1f}, {facts['params']} params, tf32={facts['tf32']}; "
            f"launched with 13 args via cupy; matches reference")


def check_ort_cuda(bundles: Bundles) -> str:
    from anymodal.runtime import Runtime
    from anymodal.runtime.backends.ort import OrtCudaBackend

    ok, why = OrtCudaBackend.available()
    if not ok:
        raise Skip(why)
    path = bundles.path()
    a = Runtime(path, backend="ort-cuda").predict(**selftest_trt.inputs())
    b = Runtime(path, backend="ort-cpu").predict(**selftest_trt.inputs())
    err = float(np.abs(a.probs - b.probs).max())
    assert err < 1e-4, f"probs differ by {err:.3g}"
    return f"session on CUDAExecutionProvider; probs max abs diff {err:.2e}"


def checks(bundles: Bundles):
    return [("triton-kernel-fp32", lambda: check_triton_kernel("fp32")),
            ("triton-kernel-fp16", lambda: check_triton_kernel("fp16")),
            ("momke-cuda-vs-cpu", check_momke_cuda_vs_cpu),
            ("aot-ptx-fp32", lambda: check_aot_ptx("fp32")),
            ("aot-ptx-fp16", lambda: check_aot_ptx("fp16")),
            ("ort-cuda", lambda: check_ort_cuda(bundles)),
            *selftest_trt.checks(bundles)]


def run_selftest(progress=print, budget_s: float = BUDGET_S) -> list[dict]:
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rt-selftest-") as tmp:
        for name, fn in checks(Bundles(Path(tmp))):
            t0 = time.perf_counter()
            try:
                status, detail = "pass", fn()
            except Skip as s:
                status, detail = "skipped", str(s)
            except AssertionError as exc:
                status, detail = "fail", str(exc)
            except Exception as exc:  # any other error is a failure of that check, reported
                status, detail = "fail", f"{type(exc).__name__}: {exc}"
            results.append({"check": name, "status": status, "detail": detail,
                            "seconds": round(time.perf_counter() - t0, 2)})
            if progress:
                progress(f"{name}: {status} ({results[-1]['seconds']} s)")
    total = round(time.perf_counter() - start, 2)
    results.append({"check": "budget", "status": "pass" if total <= budget_s else "fail", "seconds": total,
                    "detail": f"whole self-test {total:.1f} s (budget {budget_s:g} s on one GPU)"})
    return results


def format_table(results: list[dict]) -> str:
    w = max(len(r["check"]) for r in results)
    lines = [f"| {'check':<{w}} | result  | seconds | detail |", f"|{'-' * (w + 2)}|---------|---------|--------|"]
    for r in results:
        lines.append(f"| {r['check']:<{w}} | {r['status']:<7} | {r['seconds']:>7} | {r['detail']} |")
    return "\n".join(lines)
