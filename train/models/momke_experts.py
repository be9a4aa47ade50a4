"""MoMKE's three modality experts as one module with stacked weights, so that every expert on
every present modality runs in one batched op per layer (fewer, fatter ops at batch 1).

Per expert e and block j (config choices, see MoMKEConfig.sources):
  layer_norm (paper Eq. 14):  H' = H + O(MSA(LN(H)));  H = H' + FFN(LN(H'))   (+ final LN)
  authors' code (no LN):      Y = MSA(H);  H = H + Y + FFN(Y)   (no output projection O)
Weights are stored [E, Q, in, out] (input-major: `x @ W`, no transposes in the graph).
The first block's Q/K/V of all experts read the same input, so they are one matmul with the
experts' weights concatenated (LayerNorm affine folded in); later blocks use a batched matmul
over the expert axis. Heads come from a reshape, not per-head slices.
causal=True (anymodal's streaming option): utterance i attends to utterances j <= i only, and
`step` runs one new utterance per modality stream against the cached keys/values of the stream's
earlier utterances (the same maths, row by row: docs/ARCHITECTURE.md §7a).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .ort_ops import multi_head_attention


def _uniform(shape, fan_in: int) -> nn.Parameter:
    """nn.Linear's default initialisation range for weights and biases."""
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class MoMKEExperts(nn.Module):
    def __init__(self, experts: int, dim: int, depth: int, heads: int, ffn_hidden: int, dropout: float,
                 layer_norm: bool, out_proj: bool, separate_qkv: bool, causal: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        E, Q, d = experts, depth, dim
        self.E, self.Q, self.d, self.heads = E, Q, d, heads
        self.layer_norm, self.out_proj, self.separate_qkv = layer_norm, out_proj, separate_qkv
        self.causal = causal
        if separate_qkv:  # the authors' q, k, v Linear layers (same maths as one packed matmul)
            self.q_w, self.k_w, self.v_w = (_uniform((E, Q, d, d), d) for _ in range(3))
            self.q_b, self.k_b, self.v_b = (_uniform((E, Q, d), d) for _ in range(3))
        else:
            self.qkv_w, self.qkv_b = _uniform((E, Q, d, 3 * d), d), _uniform((E, Q, 3 * d), d)
        if out_proj:
            self.o_w, self.o_b = _uniform((E, Q, d, d), d), _uniform((E, Q, d), d)
        self.fc1_w, self.fc1_b = _uniform((E, Q, d, ffn_hidden), d), _uniform((E, Q, ffn_hidden), d)
        self.fc2_w, self.fc2_b = _uniform((E, Q, ffn_hidden, d), ffn_hidden), _uniform((E, Q, d), ffn_hidden)
        if layer_norm:  # ln1/ln2 per block, final LN per expert
            self.ln1_g, self.ln1_b = nn.Parameter(torch.ones(E, Q, d)), nn.Parameter(torch.zeros(E, Q, d))
            self.ln2_g, self.ln2_b = nn.Parameter(torch.ones(E, Q, d)), nn.Parameter(torch.zeros(E, Q, d))
            self.lnf_g, self.lnf_b = nn.Parameter(torch.ones(E, d)), nn.Parameter(torch.zeros(E, d))
        else:
            self.ln1_g = self.ln1_b = self.ln2_g = self.ln2_b = None
        self.drop = nn.Dropout(dropout)
        self.ort_ops = False  # export-time switch: com.microsoft attention nodes (ort_ops.py)

    def _qkv(self, j: int, sel) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed Q/K/V weights of block j for the selected experts: [e, d, 3d], [e, 3d]."""
        if self.separate_qkv:
            w = torch.cat([self.q_w[sel, j], self.k_w[sel, j], self.v_w[sel, j]], dim=-1)
            return w, torch.cat([self.q_b[sel, j], self.k_b[sel, j], self.v_b[sel, j]], dim=-1)
        return self.qkv_w[sel, j], self.qkv_b[sel, j]

    def _attend(self, qkv: torch.Tensor, blocked: torch.Tensor, N: int, L: int) -> torch.Tensor:
        """qkv [e, N·L, 3d]; blocked [1, N, 1, 1 or L, L] -> attention output [e, N·L, d]"""
        # e as a Python int (the experts chosen per call are fixed): no Shape ops in the graph
        e, d, H = int(qkv.shape[0]), self.d, self.heads
        hd = d // H
        if self.ort_ops and not self.causal:  # experts folded into the batch axis: [e·N, L, 3d]
            key_mask = (~blocked).reshape(N, L).repeat(e, 1)  # [e·N, L]
            return multi_head_attention(qkv.reshape(-1, L, 3 * d), key_mask, H).reshape(e, -1, d)
        qkv = qkv.reshape(e, N, -1, 3, H, hd).permute(3, 0, 1, 4, 2, 5)  # [3, e, N, H, L, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(-1, -2)  # [e, N, H, L, L]
        # the dtype's min, not -inf: a query with no valid key stays finite (its row is masked later)
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        out = self.drop(torch.softmax(scores, dim=-1)) @ v  # [e, N, H, L, hd]
        return out.permute(0, 1, 3, 2, 4).reshape(e, -1, d)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor, experts: slice = slice(None)) -> torch.Tensor:
        """The selected experts on the same rows. h [N, L, d]; key_mask [N, L] bool (True =
        attendable) -> [N, L, e, d]"""
        N, L = h.shape[:2]
        d = self.d  # a Python int: shapes built from it stay constants in the exported graph
        sel = experts
        e = len(range(self.E)[sel])
        blocked = ~key_mask[None, :, None, None, :]  # [1, N, 1, 1, L]
        if self.causal:  # query i may not attend to a later key j > i
            pos = torch.arange(L, device=h.device)
            blocked = blocked | (pos[None, :] > pos[:, None])  # [1, N, 1, L, L]
        rows = h.reshape(-1, d)  # [N·L, d]
        # block 0: every expert reads the same rows -> one matmul, experts' weights side by side
        w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(0, sel), 0, sel)  # [e, d, 3d], [e, 3d]
        a = self._norm(rows)
        w_cat = w.permute(1, 0, 2).reshape(d, e * 3 * d)  # [d, e·3d]
        qkv = (a @ w_cat + b.reshape(e * 3 * d)).reshape(-1, e, 3 * d).transpose(0, 1)  # [e, N·L, 3d]
        x = rows.unsqueeze(0).expand(e, -1, d)  # [e, N·L, d] residual streams
        for j in range(self.Q):
            if j > 0:
                w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(j, sel), j, sel)
                qkv = torch.baddbmm(b[:, None, :], self._norm(x), w)  # [e, N·L, 3d]
            y = self._attend(qkv, blocked, N, L)  # [e, N·L, d]
            if self.out_proj:
                y = torch.baddbmm(self.o_b[sel, j][:, None, :], y, self.o_w[sel, j])
            if self.layer_norm:
                x = x + self.drop(y)
                x = x + self.drop(self._ffn(self._norm(x), j, sel, self.ln2_g, self.ln2_b))
            else:
                x = x + y + self._ffn(y, j, sel)
        if self.layer_norm:
            x = F.layer_norm(x, (self.d,)) * self.lnf_g[sel][:, None, :] + self.lnf_b[sel][:, None, :]
        return x.reshape(e, N, L, d).permute(1, 2, 0, 3)  # [N, L, e, d]

    def step(self, h: torch.Tensor, caches: list[list[torch.Tensor]], cached: list[torch.Tensor]):
        """Causal experts on one new utterance per modality stream: row i of h attends to the
        first cached[i] slots of its own stream's caches and to itself. The same maths as
        forward(), laid out for batch 1 (the step graphs: few ops, every stream at once where
        no cache is involved; attention reads the filled slots only, never the empty ones).
        h [P, d]; caches[i] = [K_0, V_0, K_1, V_1, …] each
        [E, H, C, d/H] (C slots, the first cached[i] [1] int64 filled) -> out [P, E, d], the
        new utterance's slots [2Q, E, H, d/H] per stream"""
        P, d, E, H = h.shape[0], self.d, self.E, self.heads
        hd = d // H
        sel = slice(None)
        # [T_i]: a tensor of the filled length, whose shape slices every block's caches (traced as a
        # dynamic Slice: one contiguous copy per expert and head, not a gather per slot)
        filled = [torch.arange(n[0], device=h.device) for n in cached]
        w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(0, sel), 0, sel)  # [E, d, 3d], [E, 3d]
        w_cat = w.permute(1, 0, 2).reshape(d, E * 3 * d)  # [d, E·3d]
        qkv = (self._norm(h) @ w_cat + b.reshape(E * 3 * d)).reshape(P, E, 3, H, 1, hd).permute(2, 0, 1, 3, 4, 5)
        x = h.unsqueeze(0).expand(E, -1, d)  # [E, P, d]
        kv = []  # K_j, V_j of every stream [1, P, E, H, 1, hd]
        for j in range(self.Q):
            if j > 0:
                w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(j, sel), j, sel)
                qkv = torch.baddbmm(b[:, None, :], self._norm(x), w)  # [E, P, 3d]
                qkv = qkv.reshape(E, P, 3, H, 1, hd).permute(2, 1, 0, 3, 4, 5)
            q, k, v = qkv.split(1, dim=0)  # [1, P, E, H, 1, hd] each
            q = q * (1.0 / math.sqrt(hd))
            own = (q * k).sum(-1, keepdim=True)  # [1, P, E, H, 1, 1]: each utterance's own key
            kv += [k, v]
            rows = zip(*(t.split(1, dim=1) for t in (q, own, v))) if P > 1 else [(q, own, v)]
            ys = [_attend_filled(qi, oi, vi, caches[i][2 * j], caches[i][2 * j + 1], filled[i])
                  for i, (qi, oi, vi) in enumerate(rows)]  # [1, 1, E, H, 1, hd] each
            y = ys[0] if P == 1 else torch.cat(ys, dim=1)  # [1, P, E, H, 1, hd]
            x = self._step_block_out(x, y.permute(2, 1, 0, 3, 4, 5).reshape(E, P, d), j, sel)
        if self.layer_norm:
            x = F.layer_norm(x, (self.d,)) * self.lnf_g[:, None, :] + self.lnf_b[:, None, :]
        new = torch.cat(kv, dim=0)  # [2Q, P, E, H, 1, hd]
        new = new.split(1, dim=1) if P > 1 else (new,)
        return x.transpose(0, 1), [n.reshape(2 * self.Q, E, H, hd) for n in new]  # [P, E, d], [2Q, E, H, hd]

    def step_streams(self, h: torch.Tensor, caches: list[list[torch.Tensor]], cached: list[torch.Tensor]):
        """step() for S streams at once (batched turns): the same op order per row, so each stream's
        result equals its own step(). h [P, S, d] (modality i of stream s); caches[i] = [K_0, V_0, …]
        each [S, E, H, C, d/H]; cached[i] [S] int64 (filled slots per stream)
        -> out [P, S, E, d], the new utterances' slots [S, 2Q, E, H, d/H] per modality"""
        P, S, d, E, H = h.shape[0], h.shape[1], self.d, self.E, self.heads
        hd = d // H
        sel = slice(None)
        rows = h.reshape(-1, d)  # [P·S, d]
        w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(0, sel), 0, sel)  # [E, d, 3d], [E, 3d]
        w_cat = w.permute(1, 0, 2).reshape(d, E * 3 * d)  # [d, E·3d]
        qkv = (self._norm(rows) @ w_cat + b.reshape(E * 3 * d)).reshape(-1, E, 3 * d).transpose(0, 1)  # [E, P·S, 3d]
        x = rows.unsqueeze(0).expand(E, -1, d)  # [E, P·S, d]
        slots: list[list[torch.Tensor]] = [[] for _ in range(P)]  # per modality: K_0, V_0, … [S, E, H, hd]
        for j in range(self.Q):
            if j > 0:
                w, b = self._folded(self.ln1_g, self.ln1_b, *self._qkv(j, sel), j, sel)
                qkv = torch.baddbmm(b[:, None, :], self._norm(x), w)  # [E, P·S, 3d]
            heads = qkv.reshape(E, P, S, 3, H, hd).permute(3, 1, 2, 0, 4, 5)  # [3, P, S, E, H, hd]
            ys = []
            for i in range(P):
                q, k, v = heads[0, i], heads[1, i], heads[2, i]  # [S, E, H, hd]
                ys.append(self._attend_cached_streams(q, k, v, caches[i][2 * j], caches[i][2 * j + 1], cached[i]))
                slots[i] += [k, v]
            y = torch.stack(ys, dim=0).reshape(P * S, E, d).transpose(0, 1)  # [E, P·S, d]
            x = self._step_block_out(x, y, j, sel)
        if self.layer_norm:
            x = F.layer_norm(x, (self.d,)) * self.lnf_g[:, None, :] + self.lnf_b[:, None, :]
        out = x.reshape(E, P, S, d).permute(1, 2, 0, 3)  # [P, S, E, d]
        return out, [torch.stack(r, dim=1) for r in slots]  # [S, 2Q, E, H, hd] per modality

    def _attend_cached_streams(self, q, k, v, keys, values, cached) -> torch.Tensor:
        """_attend_cached per stream: q, k, v [S, E, H, hd]; keys/values [S, E, H, C, hd];
        cached [S] int64 -> [S, E, d]"""
        S, E, H, hd = q.shape
        q = (q * (1.0 / math.sqrt(hd))).unsqueeze(3)  # [S, E, H, 1, hd]
        past = q @ keys.transpose(-1, -2)  # [S, E, H, 1, C]
        empty = torch.arange(keys.shape[3], device=keys.device)[None, :] >= cached[:, None]  # [S, C]
        past = past.masked_fill(empty[:, None, None, None, :], torch.finfo(past.dtype).min)
        own = (q * k.unsqueeze(3)).sum(-1, keepdim=True)  # [S, E, H, 1, 1]
        p = torch.softmax(torch.cat([past, own], dim=-1), dim=-1)  # [S, E, H, 1, C + 1]
        out = p[..., :-1] @ values + p[..., -1:] * v.unsqueeze(3)  # [S, E, H, 1, hd]
        return out.reshape(S, E, H * hd)

    def _step_block_out(self, x: torch.Tensor, y: torch.Tensor, j: int, sel) -> torch.Tensor:
        """Block j's output in the step paths (eval, no dropout): x, y [E, R, d] -> [E, R, d]:
        the output projection of the attention y, then the residual and the FFN."""
        if self.out_proj:
            y = torch.baddbmm(self.o_b[sel, j][:, None, :], y, self.o_w[sel, j])
        if self.layer_norm:
            x = x + y
            return x + self._ffn(self._norm(x), j, sel, self.ln2_g, self.ln2_b)
        return x + y + self._ffn(y, j, sel)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm without its affine part (folded into the next matmul), or nothing."""
        return F.layer_norm(x, (self.d,)) if self.layer_norm else x

    def _folded(self, g, beta, w, b, j: int, sel) -> tuple[torch.Tensor, torch.Tensor]:
        """LN(x)·W + b = norm(x)·(g ∘ W) + (β·W + b): the LayerNorm affine of block j folded
        into the next matmul's weights (weight arithmetic: constants in the exported graph).
        w [e, d, k]; b [e, k]"""
        if not self.layer_norm:
            return w, b
        g, beta = g[sel, j], beta[sel, j]  # [e, d]
        return w * g[:, :, None], b + (beta[:, None, :] @ w)[:, 0]

    def _ffn(self, x: torch.Tensor, j: int, sel, g=None, beta=None) -> torch.Tensor:
        """x [e, R, d] -> [e, R, d]: Linear -> GELU -> Linear per expert (x already normalised
        when the LayerNorm affine g, beta is given: it is folded into the first Linear)."""
        w, b = self.fc1_w[sel, j], self.fc1_b[sel, j]
        if g is not None:
            w, b = self._folded(g, beta, w, b, j, sel)
        hid = F.gelu(torch.baddbmm(b[:, None, :], x, w))
        return torch.baddbmm(self.fc2_b[sel, j][:, None, :], self.drop(hid), self.fc2_w[sel, j])


def _attend_filled(q, own, v, keys, values, filled) -> torch.Tensor:
    """One query over the filled slots of a stream's cache (the empty ones are never read) and
    its own key/value. q (scaled), v [1, 1, E, H, 1, hd]; own [1, 1, E, H, 1, 1] (q · its own
    key); keys/values [E, H, C, hd]; filled [T] (its length T is what counts) -> [1, 1, E, H, 1, hd]"""
    T = filled.shape[0]
    past = q @ keys[:, :, :T].transpose(-1, -2)  # [1, 1, E, H, 1, T]
    p = torch.softmax(torch.cat([past, own], dim=-1), dim=-1)  # [.., 1, T + 1]
    return p[..., :-1] @ values[:, :, :T] + p[..., -1:] * v
