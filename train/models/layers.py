"""Transformer building blocks shared by the models (pre-LN, explicit attention so that the
ONNX export is plain MatMul/Softmax and padding is handled without NaNs)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .ort_ops import multi_head_attention


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Fixed sinusoidal position embeddings [L, dim] (Vaswani et al.), any length. `dim` is
    taken as a Python int, so the frequencies are constants in an exported graph and only the
    [L] positions are computed per request."""
    dim = int(dim)
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # [L, 1]
    idx = torch.arange(0, dim, 2, device=device, dtype=torch.float32)  # [ceil(dim/2)]
    freq = torch.exp(idx * (-math.log(10000.0) / dim))
    ang = pos * freq  # [L, ceil(dim/2)]
    pe = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).reshape(-1, 2 * len(idx))  # [L, 2·ceil(dim/2)]
    return (pe if dim % 2 == 0 else pe[:, :dim]).to(dtype)


def sinusoidal_position_at(pos: torch.Tensor, dim: int, dtype) -> torch.Tensor:
    """The sinusoidal embeddings [N, dim] of the positions pos [N] (int64): rows `pos` of
    sinusoidal_positions (streaming: one utterance at its index in the window)."""
    idx = torch.arange(0, dim, 2, device=pos.device, dtype=torch.float32)  # [ceil(dim/2)]
    freq = torch.exp(idx * (-math.log(10000.0) / dim))
    ang = pos.to(torch.float32)[:, None] * freq  # [N, ceil(dim/2)]
    pe = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(-2)[:, :dim]  # [N, dim]
    return pe.to(dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection and a key-padding mask.

    Heads are taken as static slices of the QKV output rather than by reshaping to
    [B, h, L, hd]: the exported graph then has no shape arithmetic (Shape/Gather/Concat)
    and no head transposes, which dominate batch-1 latency on CPU."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.ort_ops = False  # export-time switch: one com.microsoft attention node (ort_ops.py)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        # x [B, L, d]; blocked [B, 1, L] bool, True = key may not be attended (padding/absent)
        qkv = self.qkv(x)  # [B, L, 3d]
        if self.ort_ops:
            return self.out(multi_head_attention(qkv, ~blocked[:, 0, :], self.heads))
        d, hd = self.dim, self.head_dim
        heads = []
        for h in range(self.heads):
            q = qkv[..., h * hd:(h + 1) * hd]  # [B, L, hd]
            k = qkv[..., d + h * hd:d + (h + 1) * hd]
            v = qkv[..., 2 * d + h * hd:2 * d + (h + 1) * hd]
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, L, L]
            # masked_fill with the dtype's min (not -inf): a row with no valid key stays finite
            scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
            heads.append(self.drop(torch.softmax(scores, dim=-1)) @ v)  # [B, L, hd]
        return self.out(torch.cat(heads, dim=-1))  # [B, L, d]


class TransformerBlock(nn.Module):
    """H' = MSA(LN(H)) + H;  H = FFN(LN(H')) + H'   (MoMKE Eq. 14)."""

    def __init__(self, dim: int, heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), blocked))
        return x + self.drop(self.ffn(self.ln2(x)))


class TransformerStack(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, ffn_mult, dropout) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # x [B, L, d]; key_mask [B, L] bool, True = attendable
        blocked = ~key_mask[:, None, :]  # [B, 1, L], computed once for all blocks
        for block in self.blocks:
            x = block(x, blocked)
        return self.ln(x)


class RouterMLP(nn.Module):
    """Soft router: d -> hidden (default d) GELU -> E logits, token-wise (RouterMix,
    docs/ARCHITECTURE.md §8)."""

    def __init__(self, dim: int, experts: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def router_mix(logits: torch.Tensor, expert_out: torch.Tensor, temperature: float | torch.Tensor,
               row_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(logits / τ) over E, weighted sum of expert outputs, times the row mask.

    logits [..., E]; expert_out [..., E, d]; row_mask [...] -> mixed [..., d], weights [..., E]
    """
    w = torch.softmax(logits / temperature, dim=-1)
    mixed = (w.unsqueeze(-1) * expert_out).sum(dim=-2) * row_mask.unsqueeze(-1).to(expert_out.dtype)
    return mixed, w
