"""MoMKE: Mixture of Modality Knowledge Experts (Xu et al., ACM MM 2024; seeds/momke-paper.txt).

Fidelity rule: the paper first; where it is silent, the authors' public code (wxxv/MoMKE).
Every architectural choice is a config field and `MoMKEConfig.sources()` records which source
it follows (stored in each run's config and bundle manifest). Two presets:
* "paper" (default): the paper's pre-LN blocks (Eq. 14), sinusoidal position embeddings
  (Eq. 13) and an MSA output projection; where the paper is silent it follows the code:
  expert/router MLP width = d (mlp_ratio 1) and the single residual fusion head.
* "authors": the authors' code exactly (no LN, no positions, no output projection, separate
  q/k/v): 5.40 M parameters at IEMOCAP sizes, like their model.
Serving choices that do not change the maths:
* Missing modality: its representation R_m is zero (Fig. 2); utterances where it is missing
  are also removed from attention keys, so their features never influence other utterances.
* Fusion (authors' code): x = concat(R_a, R_t, R_v); h = x + ReLU(W x + b); head(h). W x and
  head(x) are applied per modality block (sum over m), which equals the concat form and lets a
  specialised graph drop the missing blocks instead of multiplying zeros.
* Stage 1 trains projections + experts + unimodal heads (Eq. 15-17); stage 2 trains all
  parameters through the routers and fusion head (Eq. 18-22, loss Eq. 11).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .fused import fused_router_mix
from .layers import RouterMLP, router_mix, sinusoidal_position_at, sinusoidal_positions
from .momke_cache_rows import filled_rows, gather_filled
from .momke_experts import MoMKEExperts

# Where each architectural choice comes from (paper = seeds/momke-paper.txt, code = wxxv/MoMKE).
SOURCES = {
    "hidden": "paper §4.3: d = 256 (IEMOCAP), 128 (MOSI), 256 (MOSEI)",
    "depth": "paper §4.3 / code --depth 4: Q transformer blocks per expert",
    "heads": "paper §4.3 / code --num_heads 2",
    "dropout": "paper §4.3 / code --drop_rate 0.5",
    "ffn_mult": "code: Mlp hidden = D_e * mlp_ratio, mlp_ratio = 1 (paper silent on FFN width)",
    "router_mult": "code: router Mlp hidden = D_e * mlp_ratio, mlp_ratio = 1 (paper: 'a two-layer MLP', Eq. 19)",
    "fusion": "code: hidden = x + ReLU(proj1(x)), x = concat(R_a, R_t, R_v); out = nlp_head(hidden) (paper silent)",
    "layer_norm": {True: "paper Eq. 14: pre-LN blocks (+ a final LN, paper silent)",
                   False: "code: Attention has no LayerNorm"},
    "positions": {True: "paper Eq. 13: H_0 = Z_m + Z_pos (sinusoidal, ref. [30])",
                  False: "code: no position embedding"},
    "attn_out_proj": {True: "paper Eq. 14: MSA with its output projection (ref. [30])",
                      False: "code: attention output attn @ v, no output projection"},
    "separate_qkv": {True: "code: separate q, k, v Linear layers (served as one packed matmul)",
                     False: "one packed QKV weight (same maths, paper silent)"},
    "embed_dropout": {True: "code: dropout on the projected features", False: "paper silent: none"},
    "causal": {True: "anymodal: streaming, paper silent (utterance i attends to utterances <= i only, "
                     "in both stages; the paper's experts are bidirectional)",
               False: "paper / code: bidirectional attention over the conversation"},
    "router_input": "code: routers read the projected features (+ positions when enabled); "
                    "paper Eq. 19 reads X_a",
}

PRESETS = {
    "paper": {},
    "authors": dict(layer_norm=False, positions=False, attn_out_proj=False, separate_qkv=True,
                    embed_dropout=True, ffn_mult=1, router_mult=1),
}


@dataclass
class MoMKEConfig:
    input_dims: tuple[int, int, int] = (512, 1024, 1024)  # IEMOCAP wav2vec / DeBERTa / MA-Net
    hidden: int = 256  # d
    depth: int = 4  # Q transformer blocks per expert
    heads: int = 2  # attention heads
    ffn_mult: int = 1  # expert MLP hidden = ffn_mult·d
    router_mult: int = 1  # router MLP hidden = router_mult·d
    dropout: float = 0.5
    output_dim: int = 4  # classes (emotion) or 1 (sentiment)
    task: str = "emotion"  # "emotion" -> cross-entropy, "sentiment" -> MSE
    layer_norm: bool = True
    positions: bool = True
    attn_out_proj: bool = True
    separate_qkv: bool = False
    embed_dropout: bool = False
    causal: bool = False  # anymodal option (streaming conversations): causal expert attention
    preset: str = "paper"  # the preset these fields came from (informational)

    @classmethod
    def preset_config(cls, preset: str, **overrides) -> "MoMKEConfig":
        if preset not in PRESETS:
            from anymodal.runtime.errors import DataError

            raise DataError(f"unknown MoMKE preset {preset!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides, "preset": preset})

    def sources(self) -> dict[str, str]:
        """Which source each choice of this config follows."""
        out = {}
        for k, v in SOURCES.items():
            out[k] = v[getattr(self, k)] if isinstance(v, dict) else v
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "sources": self.sources()}

    @classmethod
    def from_dict(cls, d: dict) -> "MoMKEConfig":
        d = {k: v for k, v in d.items() if k != "sources"}
        d["input_dims"] = tuple(d["input_dims"])
        return cls(**d)


class MoMKE(nn.Module):
    kind = "momke"

    def __init__(self, cfg: MoMKEConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.proj = nn.ModuleDict({m: nn.Linear(dim, d) for m, dim in zip(MODALITIES, cfg.input_dims)})
        self.experts = MoMKEExperts(len(MODALITIES), d, cfg.depth, cfg.heads, cfg.ffn_mult * d, cfg.dropout,
                                    cfg.layer_norm, cfg.attn_out_proj, cfg.separate_qkv, cfg.causal)
        self.routers = nn.ModuleDict({m: RouterMLP(d, len(MODALITIES), cfg.router_mult * d) for m in MODALITIES})
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(d, cfg.output_dim) for m in MODALITIES})
        self.fusion = nn.Linear(3 * d, 3 * d)  # the authors' proj1
        self.head = nn.Linear(3 * d, cfg.output_dim)  # the authors' nlp_head
        self.drop = nn.Dropout(cfg.dropout)
        self.fused_router = False  # export-time switch: router + mix as one RouterMix node

    # -- pieces ---------------------------------------------------------------------------
    def embed(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """H_m0 = X_m W_m (+ Z_pos)   x [B, L, d_m] -> [B, L, d]"""
        z = self.proj[m](x)
        if self.cfg.embed_dropout:
            z = self.drop(z)
        if self.cfg.positions:
            z = z + sinusoidal_positions(z.shape[1], z.shape[2], z.device, z.dtype)
        return z

    def run_experts(self, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """All three experts on the same rows. h [N, L, d] -> [N, L, 3, d]"""
        return self.experts(h, key_mask)

    def encode(self, hs: dict[str, torch.Tensor], key_masks: dict[str, torch.Tensor]):
        """Mixed representation of each given modality.

        The present modalities are stacked on the batch axis so each expert runs once
        (fewer, larger ops). hs[m] [B, L, d], key_masks[m] [B, L] bool
        -> reps[m] [B, L, d] (zero where masked), weights[m] [B, L, 3]
        """
        ms = list(hs)
        B = hs[ms[0]].shape[0]
        one = len(ms) == 1  # one modality: no concatenation or row slices in the graph
        h = hs[ms[0]] if one else torch.cat([hs[m] for m in ms], dim=0)  # [P·B, L, d]
        km = key_masks[ms[0]] if one else torch.cat([key_masks[m] for m in ms], dim=0)  # [P·B, L]
        experts = self.run_experts(h, km)  # [P·B, L, 3, d]
        reps, weights = {}, {}
        for i, m in enumerate(ms):
            rows = slice(None) if one else slice(i * B, (i + 1) * B)
            if hs[m].is_cuda and not torch.is_grad_enabled() and _triton_available():
                reps[m], weights[m] = _triton_router_mix(self.routers[m], hs[m], experts[rows], key_masks[m])
            elif self.fused_router:
                reps[m], weights[m] = fused_router_mix(self.routers[m], hs[m], experts[rows], key_masks[m])
            else:
                logits = self.routers[m](hs[m])  # [B, L, 3]
                reps[m], weights[m] = router_mix(logits, experts[rows], 1.0, key_masks[m])
        return reps, weights

    def fuse(self, reps: dict[str, torch.Tensor]) -> torch.Tensor:
        """x = concat(R_a, R_t, R_v); head(x + ReLU(W x + b)); absent modalities are zero blocks.
        Both W x and head(x) are sums over the present blocks. reps[m] [B, L, d] -> [B, L, out]"""
        d = self.cfg.hidden
        z, skip = self.fusion.bias, self.head.bias
        for m, r in reps.items():
            k = MODALITIES.index(m)
            z = z + F.linear(r, self.fusion.weight[:, k * d:(k + 1) * d])  # [B, L, 3d]
            skip = skip + F.linear(r, self.head.weight[:, k * d:(k + 1) * d])  # [B, L, out]
        return skip + F.linear(self.drop(F.relu(z)), self.head.weight)

    # -- full model with masks: the training path and the eager reference -------------------
    def forward(self, audio: torch.Tensor, text: torch.Tensor, visual: torch.Tensor,
                mask: torch.Tensor, avail: torch.Tensor):
        """audio/text/visual [B, L, d_m]; mask [B, L] bool (real utterances);
        avail [B, L, 3] bool (modality present per utterance)
        -> logits [B, L, out], router weights [B, L, 3 modalities, 3 experts]"""
        xs = dict(zip(MODALITIES, (audio, text, visual)))
        hs, kms = {}, {}
        for i, m in enumerate(MODALITIES):
            present = avail[..., i] & mask  # [B, L]
            # where(), not multiply: NaN/garbage in absent features must not leak
            x = torch.where(present[..., None], xs[m], torch.zeros_like(xs[m]))
            hs[m], kms[m] = self.embed(m, x), present
        reps, weights = self.encode(hs, kms)
        logits = self.fuse(reps)
        return logits, torch.stack([weights[m] for m in MODALITIES], dim=2)

    # -- stage 1 ---------------------------------------------------------------------------
    def unimodal_logits(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Expert of modality m on its own modality, through its own head (Eq. 15)."""
        k = MODALITIES.index(m)
        return self.unimodal_heads[m](self.experts(self.embed(m, x), mask, slice(k, k + 1))[:, :, 0])

    def parameter_report(self) -> dict:
        """Total parameters per component, and the parameters active for each pattern
        (what a specialised graph holds; the stage-1 unimodal heads are not served)."""
        def count(prefix):
            return sum(p.numel() for n, p in self.named_parameters() if n.startswith(prefix))

        comp = {"projections": count("proj."), "experts": count("experts."),
                "routers": count("routers."), "fusion": count("fusion.") + count("head."),
                "unimodal_heads": count("unimodal_heads.")}
        d = self.cfg.hidden
        # a specialised graph holds the fusion/head weight columns of its present modalities only
        shared = comp["experts"] + self.fusion.bias.numel() + self.head.bias.numel() + self.head.weight.numel()
        block = self.fusion.weight.shape[0] * d
        active = {}
        for p in ALL_PATTERNS:
            active[p] = shared + sum(count(f"proj.{m}.") + count(f"routers.{m}.") + block for m in p)
        return {"total": sum(comp.values()), "served": sum(comp.values()) - comp["unimodal_heads"],
                "components": comp, "active": active}

    def specialise(self, pattern: str) -> "MoMKESpecialised":
        return MoMKESpecialised(self, pattern)

    # -- streaming (causal models): one utterance against cached keys/values -----------------
    def step_graph(self, pattern: str) -> "MoMKEStep":
        return MoMKEStep(self, pattern)

    def step(self, xs: dict[str, torch.Tensor], position: torch.Tensor | None,
             caches: dict[str, list[torch.Tensor]], cached: dict[str, torch.Tensor]):
        """The present modalities of one new utterance. xs[m] [1, 1, d_m] (batch 1, seq 1, as the
        full graphs: the same MatMul weight layout, shared in the bundle); position [1] int64 (its
        index in the window; None without position embeddings); caches[m] = [K_0, V_0, …] each
        [3, heads, C, d/heads] whose first cached[m] [1] slots hold m's earlier present utterances
        -> logits [1, 1, out], router weights [1, 1, P, 3], new slots {m: [2Q, 3, heads, d/heads]}"""
        if not self.cfg.causal:
            raise ValueError("step(): a bidirectional MoMKE has no step graphs (train with causal=True)")
        ms = list(xs)
        hs = {}
        for m in ms:
            z = self.proj[m](xs[m])  # [1, 1, d]
            if self.cfg.positions:
                z = z + sinusoidal_position_at(position, z.shape[-1], z.dtype)  # + [1, d]
            hs[m] = z
        out, slots = self.experts.step(torch.cat([hs[m][0] for m in ms], dim=0), [caches[m] for m in ms],
                                       [cached[m] for m in ms])  # [P, 3, d]
        weights = {m: torch.softmax(self.routers[m](hs[m]), dim=-1) for m in ms}  # [1, 1, 3]
        rows = out.split(1, dim=0) if len(ms) > 1 else (out,)  # [1, 3, d] each
        reps = {m: weights[m] @ r for m, r in zip(ms, rows)}  # router_mix at one row: [1, 1, d]
        return self.fuse(reps), torch.stack([weights[m] for m in ms], dim=2), dict(zip(ms, slots))

    def streams_step_graph(self) -> "MoMKEStreamsStep":
        return MoMKEStreamsStep(self)

    def step_streams(self, xs: dict[str, torch.Tensor], position: torch.Tensor | None,
                     pools: dict[str, list[torch.Tensor]], stream: torch.Tensor,
                     cached: dict[str, torch.Tensor], present: torch.Tensor):
        """step() for S streams at once, each with its own pattern (batched conversation turns).
        xs[m] [S, 1, d_m] for every modality (zeros where absent); position [S] int64 (None
        without position embeddings); pools[m] = [K_0, V_0, …] each [N, 3, heads, C, d/heads],
        the caches of N streams of which rows `stream` [S] int64 take part (gathered: the runtime
        never stacks caches); cached[m] [S]; present [S, 3] bool (modality m reported this turn).
        An absent modality's representation is zero (as in the full model), so row s equals
        step() with stream s's pattern; its router weights and new slots are to be ignored.
        -> logits [S, 1, out], router weights [S, 1, 3, 3], new slots {m: [S, 2Q, 3, heads, d/heads]}"""
        if not self.cfg.causal:
            raise ValueError("step_streams(): a bidirectional MoMKE has no step graphs (train with causal=True)")
        ms = list(xs)
        hs = {}
        for m in ms:
            z = self.proj[m](xs[m])  # [S, 1, d]
            if self.cfg.positions:
                z = z + sinusoidal_position_at(position, z.shape[-1], z.dtype)[:, None, :]  # + [S, 1, d]
            hs[m] = z
        caches = []
        for m in ms:  # the filled slots of each stream's caches only: [S, 3, H, T, dh] each
            rows = filled_rows(pools[m][0], stream, cached[m])
            caches.append([gather_filled(pool, rows) for pool in pools[m]])
        out, slots = self.experts.step_streams(torch.stack([hs[m][:, 0] for m in ms], dim=0), caches,
                                               [cached[m] for m in ms])  # [P, S, 3, d]
        reps, weights = {}, {}
        for i, m in enumerate(ms):
            used = present[:, MODALITIES.index(m)][:, None]  # [S, 1]: R_m = 0 where m is absent
            reps[m], weights[m] = router_mix(self.routers[m](hs[m]), out[i][:, None], 1.0, used)  # [S, 1, d|3]
        return self.fuse(reps), torch.stack([weights[m] for m in ms], dim=2), dict(zip(ms, slots))

    def stage1_parameters(self):
        return [p for name, p in self.named_parameters()
                if name.startswith(("proj.", "experts.", "unimodal_heads."))]


@functools.lru_cache(maxsize=None)  # asked per modality per forward: import once
def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_router_mix(router, h, experts, mask, temperature: float = 1.0):
    """Inference on CUDA: the fused Triton RouterMix kernel (no autograd; training and CPU use
    the plain path). h [B, L, d]; experts [B, L, 3, d]; mask [B, L]"""
    from anymodal.kernels.router_mix import router_mix as triton_router_mix

    B, L, d = h.shape
    mixed, w = triton_router_mix(h.reshape(-1, d), router.fc1.weight.t(), router.fc1.bias,
                                 router.fc2.weight.t(), router.fc2.bias,
                                 experts.reshape(B * L, experts.shape[2], -1), temperature, mask.reshape(-1))
    return mixed.view(B, L, -1), w.view(B, L, -1)


class MoMKEStep(nn.Module):
    """The step graph of one pattern (causal models): inputs as RuntimeFamily.step_graph_inputs
    (features [1, 1, d_m] per present modality, position [1] if the model uses positions, then
    per present modality its 2Q caches and filled-slot count), outputs the pattern graph's at
    batch 1, seq 1, then each present modality's new slots."""

    def __init__(self, model: MoMKE, pattern: str):
        super().__init__()
        self.model, self.pattern = model, pattern

    def forward(self, *inputs: torch.Tensor):
        P, n = len(self.pattern), 2 * self.model.cfg.depth
        xs = dict(zip(self.pattern, inputs[:P]))  # [1, 1, d_m]
        rest = list(inputs[P:])
        position = rest.pop(0) if self.model.cfg.positions else None
        caches, cached = {}, {}
        for m in self.pattern:  # per modality: its n caches, then its filled-slot count
            caches[m], cached[m], rest = rest[:n], rest[n], rest[n + 1:]
        logits, weights, slots = self.model.step(xs, position, caches, cached)
        return (logits, weights, *[slots[m] for m in self.pattern])  # [1, 1, C], [1, 1, P, 3], [2Q, …]


class MoMKEStreamsStep(nn.Module):
    """The batched step graph (one for every pattern): inputs as RuntimeFamily.
    streams_step_graph_inputs (features [S, 1, d_m] of every modality, position [S] if the model
    uses positions, the streams' pool rows `stream` [S], `present` [S, 3], then per modality its
    2Q cache pools and filled-slot counts [S]), outputs MoMKEStep's with a leading stream axis
    and every modality's router weights and new slots."""

    def __init__(self, model: MoMKE):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor):
        P, n = len(MODALITIES), 2 * self.model.cfg.depth
        xs = dict(zip(MODALITIES, inputs[:P]))  # [S, 1, d_m]
        rest = list(inputs[P:])
        position = rest.pop(0) if self.model.cfg.positions else None
        stream, present = rest.pop(0), rest.pop(0)
        pools, cached = {}, {}
        for m in MODALITIES:  # per modality: its n cache pools, then its filled-slot counts
            pools[m], cached[m], rest = rest[:n], rest[n], rest[n + 1:]
        logits, weights, slots = self.model.step_streams(xs, position, pools, stream, cached, present)
        return (logits, weights, *[slots[m] for m in MODALITIES])  # [S, 1, C], [S, 1, 3, 3], [S, 2Q, …]


class MoMKESpecialised(nn.Module):
    """The trained model specialised to one availability pattern: only the present
    modalities' inputs, projections and routers; missing branches do not exist.
    Inputs: one [B, L, d_m] array per present modality (+ mask [B, L]); outputs logits and
    router weights [B, L, P, 3] for the P present modalities."""

    def __init__(self, model: MoMKE, pattern: str):
        super().__init__()
        self.model, self.pattern = model, pattern

    def forward(self, *inputs: torch.Tensor):
        *xs, mask = inputs
        hs = {m: self.model.embed(m, x) for m, x in zip(self.pattern, xs)}
        reps, weights = self.model.encode(hs, {m: mask for m in self.pattern})
        return self.model.fuse(reps), torch.stack([weights[m] for m in self.pattern], dim=2)
