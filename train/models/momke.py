"""MoMKE: Mixture of Modality Knowledge Experts (Xu et al., ACM MM 2024; seeds/momke-paper.txt).

Choices where the paper is silent or differs from its public code (we follow the paper):
* Router input: the projected utterance features `Z_m + pos` (d-dim), not the raw features,
  so one router shape (d -> d GELU -> 3) serves every modality and the fused RouterMix kernel.
* Position embeddings: fixed sinusoidal (the paper cites Vaswani et al.), so any conversation
  length is served without a length limit baked into the weights.
* Experts: pre-LN transformer stacks (Eq. 14) with a final LayerNorm; FFN width 4·d.
* Missing modality: its representation R_m is zero (Fig. 2). Within a modality, utterances
  where it is missing are also removed from attention keys, so their features can never
  influence other utterances.
* Fusion: concat(R_a, R_t, R_v) -> residual MLP -> head. The first fusion layer is applied
  per modality block (sum of R_m W_m), which equals the concat form and lets a specialised
  graph drop the missing blocks instead of multiplying zeros.
* Stage 1 trains projections + experts + unimodal heads (Eq. 15-17); stage 2 trains all
  parameters through the routers and fusion head (Eq. 18-22, loss Eq. 11).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES
from torch import nn
from torch.nn import functional as F

from .fused import fused_router_mix
from .layers import RouterMLP, TransformerStack, router_mix, sinusoidal_positions


@dataclass
class MoMKEConfig:
    input_dims: tuple[int, int, int] = (512, 1024, 1024)  # IEMOCAP wav2vec / DeBERTa / MA-Net
    hidden: int = 256  # d: paper 256 (IEMOCAP), 128 (MOSI), 256 (MOSEI)
    depth: int = 4  # Q transformer blocks per expert (paper)
    heads: int = 2  # attention heads (paper)
    ffn_mult: int = 4  # FFN width = 4·d (standard transformer; paper silent)
    dropout: float = 0.5  # paper, all datasets
    output_dim: int = 4  # classes (emotion) or 1 (sentiment)
    task: str = "emotion"  # "emotion" -> cross-entropy, "sentiment" -> MSE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MoMKEConfig":
        d = dict(d)
        d["input_dims"] = tuple(d["input_dims"])
        return cls(**d)


class MoMKE(nn.Module):
    kind = "momke"

    def __init__(self, cfg: MoMKEConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.proj = nn.ModuleDict({m: nn.Linear(dim, d) for m, dim in zip(MODALITIES, cfg.input_dims)})
        self.experts = nn.ModuleList(
            TransformerStack(d, cfg.depth, cfg.heads, cfg.ffn_mult, cfg.dropout) for _ in MODALITIES)
        self.routers = nn.ModuleDict({m: RouterMLP(d, len(MODALITIES)) for m in MODALITIES})
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(d, cfg.output_dim) for m in MODALITIES})
        # fusion_in[m] is the block of the first fusion layer that reads R_m (bias on "a" only)
        self.fusion_in = nn.ModuleDict({m: nn.Linear(d, 3 * d, bias=(m == "a")) for m in MODALITIES})
        self.fusion_out = nn.Linear(3 * d, 3 * d)
        self.head = nn.Linear(3 * d, cfg.output_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.fused_router = False  # export-time switch: router + mix as one RouterMix node

    # -- pieces ---------------------------------------------------------------------------
    def embed(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """H_m0 = X_m W_m + Z_pos   x [B, L, d_m] -> [B, L, d]"""
        z = self.proj[m](x)
        return z + sinusoidal_positions(z.shape[1], z.shape[2], z.device, z.dtype)

    def run_experts(self, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """All three experts on the same rows. h [N, L, d] -> [N, L, 3, d]"""
        return torch.stack([e(h, key_mask) for e in self.experts], dim=2)

    def encode(self, hs: dict[str, torch.Tensor], key_masks: dict[str, torch.Tensor]):
        """Mixed representation of each given modality.

        The present modalities are stacked on the batch axis so each expert runs once
        (fewer, larger ops). hs[m] [B, L, d], key_masks[m] [B, L] bool
        -> reps[m] [B, L, d] (zero where masked), weights[m] [B, L, 3]
        """
        ms = list(hs)
        B = hs[ms[0]].shape[0]
        h = torch.cat([hs[m] for m in ms], dim=0)  # [P·B, L, d]
        km = torch.cat([key_masks[m] for m in ms], dim=0)  # [P·B, L]
        experts = self.run_experts(h, km)  # [P·B, L, 3, d]
        reps, weights = {}, {}
        for i, m in enumerate(ms):
            rows = slice(i * B, (i + 1) * B)
            if hs[m].is_cuda and not torch.is_grad_enabled() and _triton_available():
                reps[m], weights[m] = _triton_router_mix(self.routers[m], hs[m], experts[rows], key_masks[m])
            elif self.fused_router:
                reps[m], weights[m] = fused_router_mix(self.routers[m], hs[m], experts[rows], key_masks[m])
            else:
                logits = self.routers[m](hs[m])  # [B, L, 3]
                reps[m], weights[m] = router_mix(logits, experts[rows], 1.0, key_masks[m])
        return reps, weights

    def fuse(self, reps: dict[str, torch.Tensor]) -> torch.Tensor:
        """concat(R_a, R_t, R_v) -> residual MLP -> head; absent modalities contribute zero.
        reps[m] [B, L, d] -> [B, L, out]"""
        z = self.fusion_in["a"].bias
        for m, r in reps.items():
            z = z + F.linear(r, self.fusion_in[m].weight)  # [B, L, 3d]
        h = z + self.fusion_out(self.drop(F.gelu(z)))
        return self.head(self.drop(h))

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
        return self.unimodal_heads[m](self.experts[k](self.embed(m, x), mask))

    def parameter_report(self) -> dict:
        """Total parameters per component, and the parameters active for each pattern
        (what a specialised graph holds; the stage-1 unimodal heads are not served)."""
        def count(prefix):
            return sum(p.numel() for n, p in self.named_parameters() if n.startswith(prefix))

        comp = {"projections": count("proj."), "experts": count("experts."),
                "routers": count("routers."), "fusion": count("fusion") + count("head."),
                "unimodal_heads": count("unimodal_heads.")}
        shared = comp["experts"] + count("fusion_out.") + count("head.") + self.fusion_in["a"].bias.numel()
        active = {}
        for p in ALL_PATTERNS:
            active[p] = shared + sum(count(f"proj.{m}.") + count(f"routers.{m}.")
                                     + self.fusion_in[m].weight.numel() for m in p)
        return {"total": sum(comp.values()), "served": sum(comp.values()) - comp["unimodal_heads"],
                "components": comp, "active": active}

    def specialise(self, pattern: str) -> "MoMKESpecialised":
        return MoMKESpecialised(self, pattern)

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
