"""What the authors' public code computes for one MoMKE request, on a model's own weights: the
`reference-eager`, `reference-compiled` and `reference-int8` rt-bench variants.

It follows the structure of wxxv/MoMKE's forward (learned from it, not copied): the weights
live in nn.Linear modules like theirs (one q, k, v and MLP Linear per expert and block, so every
projection is one fused addmm and `quantize_dynamic` finds them), every one of the three
modalities goes through every one of the three experts (9 expert passes) whatever is missing,
masked attention with -inf then NaN -> 0, router weights repeated to the feature width, the
missing rows zeroed by in-place boolean indexing, then the residual fusion head. No
specialisation, fp32 (int8: torch's dynamic quantisation of every nn.Linear).

The paper preset's extra pieces (pre-LN, position embeddings, the MSA output projection) are
computed where the config has them: the reference then does that much more work than the
authors' code (about 10 % at IEMOCAP sizes), which is the model's, not the harness's.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from .layers import sinusoidal_positions

MODS = ("a", "t", "v")
MODES = ("eager", "compiled", "int8")


def _linear(w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    """An nn.Linear holding x @ w + b (w stored input-major [in, out], as the experts keep it)."""
    lin = nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        lin.weight.copy_(w.t())
        lin.bias.copy_(b)
    return lin


def _copy(lin: nn.Linear) -> nn.Linear:
    return _linear(lin.weight.detach().t(), lin.bias.detach())


class _Block(nn.Module):
    """One transformer block of one expert, as the authors' Attention (+ the paper's LN and
    output projection where the config has them)."""

    def __init__(self, ex, e: int, j: int):
        super().__init__()
        d = ex.d
        self.heads, self.layer_norm = ex.heads, ex.layer_norm
        if ex.separate_qkv:
            ws, bs = (ex.q_w[e, j], ex.k_w[e, j], ex.v_w[e, j]), (ex.q_b[e, j], ex.k_b[e, j], ex.v_b[e, j])
        else:  # packed weights, served as the authors' three Linears (same maths)
            ws, bs = ex.qkv_w[e, j].split(d, dim=-1), ex.qkv_b[e, j].split(d, dim=-1)
        self.q, self.k, self.v = (_linear(w.detach(), b.detach()) for w, b in zip(ws, bs))
        self.o = _linear(ex.o_w[e, j].detach(), ex.o_b[e, j].detach()) if ex.out_proj else None
        self.fc1 = _linear(ex.fc1_w[e, j].detach(), ex.fc1_b[e, j].detach())
        self.fc2 = _linear(ex.fc2_w[e, j].detach(), ex.fc2_b[e, j].detach())
        if ex.layer_norm:
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            with torch.no_grad():
                for ln, g, b in ((self.ln1, ex.ln1_g, ex.ln1_b), (self.ln2, ex.ln2_g, ex.ln2_b)):
                    ln.weight.copy_(g[e, j])
                    ln.bias.copy_(b[e, j])

    def attention(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q = self.q(x).reshape(B, L, self.heads, -1).permute(0, 2, 1, 3) * (d // self.heads) ** -0.5
        k = self.k(x).reshape(B, L, self.heads, -1).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, L, self.heads, -1).permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)).masked_fill(~key_mask[:, None, None, :], float("-inf")).softmax(dim=-1)
        attn = torch.where(torch.isnan(attn), torch.full_like(attn, 0), attn)
        y = (attn @ v).transpose(1, 2).reshape(B, L, d)
        return self.o(y) if self.o is not None else y

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:  # paper Eq. 14
            x = x + self.attention(self.ln1(x), key_mask)
            return x + self.mlp(self.ln2(x))
        y = self.attention(x, key_mask)  # the authors' block: x + (y + MLP(y))
        return x + (y + self.mlp(y))


class ReferenceMoMKE(nn.Module):
    """The authors' computation on a MoMKE's weights (copied: quantising it leaves the model
    alone). forward(audio, text, visual, mask, avail) -> logits [B, L, out]."""

    def __init__(self, model):
        super().__init__()
        ex, cfg = model.experts, model.cfg
        self.hidden, self.positions = cfg.hidden, cfg.positions
        self.proj = nn.ModuleDict({m: _copy(model.proj[m]) for m in MODS})
        self.router_fc1 = nn.ModuleDict({m: _copy(model.routers[m].fc1) for m in MODS})
        self.router_fc2 = nn.ModuleDict({m: _copy(model.routers[m].fc2) for m in MODS})
        # blocks[j][e]: depth-major like the authors' loop (each layer runs the three experts)
        self.blocks = nn.ModuleList(nn.ModuleList(_Block(ex, e, j) for e in range(ex.E)) for j in range(ex.Q))
        self.final_ln = None
        if ex.layer_norm:
            self.final_ln = nn.ModuleList(nn.LayerNorm(ex.d) for _ in range(ex.E))
            with torch.no_grad():
                for e, ln in enumerate(self.final_ln):
                    ln.weight.copy_(ex.lnf_g[e])
                    ln.bias.copy_(ex.lnf_b[e])
        self.fusion, self.head = _copy(model.fusion), _copy(model.head)
        self.eval()

    def experts(self, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """All experts on one modality, one pass each. h [B, L, d] -> [B, L, E·d]"""
        xs = [torch.clone(h) for _ in self.blocks[0]]
        for layer in self.blocks:
            xs = [block(x, key_mask) for block, x in zip(layer, xs)]
        if self.final_ln is not None:
            xs = [ln(x) for ln, x in zip(self.final_ln, xs)]
        return torch.cat(xs, dim=-1)

    def forward(self, audio, text, visual, mask, avail) -> torch.Tensor:
        """audio/text/visual [B, L, d_m] (absent modalities as zeros); mask [B, L] bool;
        avail [B, L, 3] bool -> logits [B, L, out]"""
        B, L, _ = audio.shape
        d = self.hidden
        input_mask = avail.clone()
        input_mask[~mask] = False  # the authors' in-place masking
        attn_mask = input_mask.transpose(1, 2).reshape(B, -1)  # [B, 3L]
        reps = []
        for i, (m, x) in enumerate(zip(MODS, (audio, text, visual))):
            h = self.proj[m](x)
            if self.positions:
                h = h + sinusoidal_positions(L, d, h.device, h.dtype)
            w = torch.softmax(self.router_fc2[m](F.gelu(self.router_fc1[m](h))), dim=-1)
            w = w.unsqueeze(-1).repeat(1, 1, 1, d)  # [B, L, 3, d]
            outs = self.experts(h, attn_mask[:, i * L:(i + 1) * L])  # [B, L, 3d]
            reps.append(torch.sum(w * outs.reshape(B, L, 3, d), dim=2))
        x = torch.cat(reps, dim=1)  # [B, 3L, d]
        x[attn_mask == 0] = 0
        x_joint = torch.cat([x[:, :L], x[:, L:2 * L], x[:, 2 * L:]], dim=-1)  # [B, L, 3d]
        hidden = x_joint + F.relu(self.fusion(x_joint))
        return self.head(hidden)


def reference_forward(model, audio, text, visual, mask, avail) -> torch.Tensor:
    """Logits [B, L, out] of the authors' computation on `model`'s weights (one-off: builds
    the reference module each call; rt-bench builds it once)."""
    return ReferenceMoMKE(model)(audio, text, visual, mask, avail)


def quantised(ref: ReferenceMoMKE) -> nn.Module:
    """What a PyTorch user tries first for int8 on CPU: dynamic int8 quantisation of every
    nn.Linear (weights int8 ahead of time, activations quantised per call)."""
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(ref, {nn.Linear}, dtype=torch.qint8)


_BUILT: dict[tuple[int, str], nn.Module] = {}  # (id(model), mode) -> reference: built once per run


def build_reference(model, mode: str = "eager") -> nn.Module:
    """The reference module of `model` in `mode` (eager | compiled | int8), built once per model
    and mode: later conditions of a run reuse it (same input shapes: the reference always takes
    all three modalities, so torch.compile compiles once)."""
    if mode not in MODES:
        raise ValueError(f"unknown reference mode {mode!r}; choose from {', '.join(MODES)}")
    key = (id(model), mode)
    if key not in _BUILT:
        ref = ReferenceMoMKE(model)
        _BUILT[key] = quantised(ref) if mode == "int8" else torch.compile(ref) if mode == "compiled" else ref
    return _BUILT[key]


def reference_callable(model, feeds: list[torch.Tensor], mode: str = "eager"):
    """A zero-argument call of the reference on fixed inputs, run once here (compiled ones are
    compiled then), before any timing."""
    fn = build_reference(model, mode)

    def call():
        with torch.inference_mode():
            return fn(*feeds)

    call()
    return call
