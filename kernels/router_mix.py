"""RouterMix as one Triton kernel: router MLP -> temperature softmax -> weighted expert sum
-> row mask, for a tile of BLOCK_N rows per program. Triton is imported lazily; the kernel
runs on CUDA, or on CPU under TRITON_INTERPRET=1 (how the tests check it).

`tl.dot` needs every dimension >= 16, so the hidden width is padded to a power of two >= 16
and E to 16, the padded experts getting -inf logits (zero weight). Both products run in IEEE
fp32 (`input_precision="ieee"`): Triton's default TF32 on sm_80+ is off by up to ~1e-2 from the
numpy reference, which the fp32 parity checks (atol 1e-5) would fail on every Ampere/Hopper GPU.
"""

from __future__ import annotations

import functools

KERNEL_NAME = "router_mix_kernel"
BLOCK_N = 16  # rows per program
BLOCK_K = 16  # K-tile of the first router layer
BLOCK_E = 16  # experts padded to tl.dot's minimum


def padded(n: int, minimum: int = 16) -> int:
    return max(minimum, 1 << (n - 1).bit_length())


@functools.cache
def _kernel_source():
    """The undecorated kernel function (decorated by `kernel()` / `aot_kernel()`)."""
    import triton.language as tl

    # Argument order (inputs, int scalars, outputs) is what TensorRT's AOT plugins pass;
    # the temperature is compiled in (TensorRT passes only integer extra arguments).
    def router_mix_kernel(x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, ex_ptr, mask_ptr,
                          N, D, E, DO, out_ptr, wout_ptr,
                          INV_TEMP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_DO: tl.constexpr):
        pid = tl.program_id(0)
        rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
        rmask = rows < N
        cols = tl.arange(0, BLOCK_D)  # hidden units [BD]
        cmask = cols < D
        # h = x @ w1, K-tiled: x [N, D] row-major, w1 [D, D] (in, out) row-major
        acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            kmask = ks < D
            xk = tl.load(x_ptr + rows[:, None] * D + ks[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
            wk = tl.load(w1_ptr + ks[:, None] * D + cols[None, :], mask=kmask[:, None] & cmask[None, :], other=0.0)
            acc += tl.dot(xk.to(tl.float32), wk.to(tl.float32), input_precision="ieee")
        h = acc + tl.load(b1_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        h = 0.5 * h * (1.0 + tl.math.erf(h * 0.7071067811865476))  # exact GELU [BN, BD]
        # logits = h @ w2 + b2: w2 [D, E]
        es = tl.arange(0, BLOCK_E)
        emask = es < E
        w2 = tl.load(w2_ptr + cols[:, None] * E + es[None, :], mask=cmask[:, None] & emask[None, :], other=0.0)
        logits = tl.dot(h, w2.to(tl.float32), input_precision="ieee") + tl.load(b2_ptr + es, mask=emask, other=0.0).to(tl.float32)[None, :]
        logits = tl.where(emask[None, :], logits * INV_TEMP, float("-inf"))  # [BN, BE]
        logits = logits - tl.max(logits, axis=1)[:, None]
        p = tl.exp(logits)
        p = p / tl.sum(p, axis=1)[:, None]
        tl.store(wout_ptr + rows[:, None] * E + es[None, :], p.to(wout_ptr.dtype.element_ty),
                 mask=rmask[:, None] & emask[None, :])
        # mixed = Σ_e p[:, e] · experts[:, e, :]; experts [N, E, DO] row-major
        dcols = tl.arange(0, BLOCK_DO)
        dmask = dcols < DO
        out = tl.zeros((BLOCK_N, BLOCK_DO), dtype=tl.float32)
        for e in range(0, E):
            pe = tl.sum(tl.where(es[None, :] == e, p, 0.0), axis=1)  # [BN]
            xe = tl.load(ex_ptr + (rows[:, None] * E + e) * DO + dcols[None, :],
                         mask=rmask[:, None] & dmask[None, :], other=0.0)
            out += pe[:, None] * xe.to(tl.float32)
        keep = tl.load(mask_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
        out = out * keep[:, None]
        tl.store(out_ptr + rows[:, None] * DO + dcols[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=rmask[:, None] & dmask[None, :])

    return router_mix_kernel


@functools.cache
def kernel():
    """The launchable kernel (interpreted on CPU when TRITON_INTERPRET=1)."""
    import triton

    return triton.jit(_kernel_source())


@functools.cache
def aot_kernel():
    """Always a compilable JITFunction, whatever TRITON_INTERPRET says (AOT needs no GPU)."""
    from triton.runtime.jit import JITFunction

    return JITFunction(_kernel_source())


def launch_config(N: int, D: int, DO: int, temperature: float = 1.0) -> dict:
    """Grid and compile-time constants for a problem (shared by the launcher and AOT)."""
    return {"grid": ((N + BLOCK_N - 1) // BLOCK_N,), "INV_TEMP": 1.0 / float(temperature),
            "BLOCK_N": BLOCK_N, "BLOCK_K": BLOCK_K, "BLOCK_D": padded(D), "BLOCK_E": BLOCK_E,
            "BLOCK_DO": padded(DO)}


def router_mix(x, w1, b1, w2, b2, experts, temperature: float, row_mask):
    """Torch tensors: x [N, d], w1 [d, d] (in, out), b1 [d], w2 [d, E], b2 [E],
    experts [N, E, do], row_mask [N] -> (mixed [N, do], weights [N, E]) in x's dtype."""
    import torch

    N, D = x.shape
    E, DO = experts.shape[1], experts.shape[2]
    if E > BLOCK_E:
        raise ValueError(f"RouterMix supports at most {BLOCK_E} experts, got {E}")
    if w1.shape != (D, D) or w2.shape != (D, E) or experts.shape[0] != N or row_mask.shape != (N,):
        raise ValueError(f"RouterMix shapes disagree: x {tuple(x.shape)}, w1 {tuple(w1.shape)}, "
                         f"w2 {tuple(w2.shape)}, experts {tuple(experts.shape)}, mask {tuple(row_mask.shape)}")
    x, w1, b1, w2, b2, experts = (t.contiguous() for t in (x, w1, b1, w2, b2, experts))
    mask = row_mask.to(x.dtype).contiguous()
    out = torch.empty((N, DO), dtype=x.dtype, device=x.device)
    weights = torch.empty((N, E), dtype=x.dtype, device=x.device)
    cfg = launch_config(N, D, DO, temperature)
    grid = cfg.pop("grid")
    if x.is_cuda:  # Triton launches on the current device: make it x's, not device 0's
        with torch.cuda.device(x.device):
            kernel()[grid](x, w1, b1, w2, b2, experts, mask, N, D, E, DO, out, weights, **cfg)
    else:
        kernel()[grid](x, w1, b1, w2, b2, experts, mask, N, D, E, DO, out, weights, **cfg)
    return out, weights
