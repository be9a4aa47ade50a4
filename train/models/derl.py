"""DERL: Disentangled Expert Representation Learning (Li et al.; seeds/derl-paper.txt).

Pipeline per modality m (a, t, v), on sequences [B, T_m, D_m] with a padding mask:
  unified encoder  [U_b; P_m(X_m) + pos] -> transformer -> first N tokens      U_m  [B, N, d]
  HED              token-wise router over k_p private + k_s shared experts     H^p_m, H^s_m [B, N, d]
  MRF              router over the 6 sequences (a_p t_p v_p a_s t_s v_s)      H_e  [B, N, d]
                   -> fusion transformer -> mean pool -> MLP regressor         score [B, out]
Training adds MLCR: input-, disentanglement- and joint-level L1 reconstruction of the
complete-input encodings from the corrupted ones, plus the orthogonality loss.

Choices where the paper is silent (documented in docs/ARCHITECTURE.md §4):
* The unified representation is the N bottleneck positions of the encoder output (Eq. 2:
  U_m in R^{N x D}); every modality then has the same length N, which Eq. 15 needs.
* A missing text token is a learned 768-d input vector `unk_text` (the [UNK] representation
  when text comes as precomputed BERT features); missing audio/visual frames are zeros.
* An absent sensor is its modality with every token missing, at a fixed length
  (`absent_lengths`), so its branch is a constant that specialised graphs fold away.
* L_dec uses |cos| (orthogonality): raw cosine would reward anti-parallel features, which
  are as redundant as parallel ones. L1 losses are means over elements.
* The complete-input targets of MLCR are computed without gradient (stop-gradient): with
  gradient on both sides an L1 alignment can collapse both to a constant.
* Temperatures are learned directly, clamped at 1e-2 so a step can never make them <= 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .layers import TransformerStack, sinusoidal_positions

MIN_TEMPERATURE = 1e-2


@dataclass
class DERLConfig:
    input_dims: tuple[int, int, int] = (5, 768, 20)  # a, t, v: MOSI (COVAREP, BERT, Facet)
    hidden: int = 128  # paper: 128
    bottleneck: int = 4  # N: 4 (MOSI), 8 (MOSEI)
    private_experts: int = 1  # k_p: 1 (MOSI), 3 (MOSEI)
    shared_experts: int = 3  # k_s: 3
    unified_depth: int = 1  # 1
    fusion_depth: int = 2  # 2
    heads: int = 4  # paper silent
    ffn_mult: int = 4  # paper silent
    dropout: float = 0.1  # paper silent
    absent_lengths: tuple[int, int, int] = (375, 50, 500)  # a, t, v: an absent sensor's length
    output_dim: int = 1
    task: str = "sentiment"
    # parameters of the frozen text encoder that featurises `text_bert` outside the model
    # (0: precomputed text features); reported, never part of a bundle
    text_encoder_params: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DERLConfig":
        d = dict(d)
        for key in ("input_dims", "absent_lengths"):
            d[key] = tuple(d[key])
        return cls(**d)


PRESETS = {
    "mosi": dict(input_dims=(5, 768, 20), bottleneck=4, private_experts=1, shared_experts=3,
                 unified_depth=1, fusion_depth=2, absent_lengths=(375, 50, 500)),
    "mosei": dict(input_dims=(74, 768, 35), bottleneck=8, private_experts=3, shared_experts=3,
                  unified_depth=1, fusion_depth=2, absent_lengths=(500, 50, 500)),
}


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """The paper's two-layer MLP (experts, routers, reconstruction networks)."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


def mix(weights: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Weighted sum over experts. weights [B, N, E]; outputs [B, N, E, d] -> [B, N, d]"""
    return (weights.unsqueeze(-1) * outputs).sum(dim=-2)


def abs_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |cos| between token vectors. a, b [B, N, d] -> scalar"""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8).abs().mean()


class DERL(nn.Module):
    kind = "derl"

    def __init__(self, cfg: DERLConfig):
        super().__init__()
        self.cfg = cfg
        d, E = cfg.hidden, cfg.private_experts + cfg.shared_experts
        dims = dict(zip(MODALITIES, cfg.input_dims))
        self.unk_text = nn.Parameter(torch.zeros(dims["t"]))  # the missing-text-token input
        self.bottleneck = nn.Parameter(torch.randn(cfg.bottleneck, d) * 0.02)  # U_b, shared
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], d) for m in MODALITIES})
        self.unified = nn.ModuleDict({m: TransformerStack(d, cfg.unified_depth, cfg.heads, cfg.ffn_mult,
                                                          cfg.dropout) for m in MODALITIES})
        # HED: private experts per modality, shared experts used by every modality
        self.private = nn.ModuleDict({m: nn.ModuleList(mlp(d, d, d) for _ in range(cfg.private_experts))
                                      for m in MODALITIES})
        self.shared = nn.ModuleList(mlp(d, d, d) for _ in range(cfg.shared_experts))
        self.hed_router = nn.ModuleDict({m: mlp(d, d, E) for m in MODALITIES})
        self.hed_temperature = nn.ParameterDict({m: nn.Parameter(torch.tensor(1.0 / E)) for m in MODALITIES})
        # MLCR (training only; never exported)
        self.rec_input = nn.ModuleDict({m: mlp(d, d, d) for m in MODALITIES})
        self.rec_private = nn.ModuleDict({m: mlp(d, d, d) for m in MODALITIES})
        self.rec_shared = nn.ModuleDict({m: mlp(d, d, d) for m in MODALITIES})
        self.rec_joint = nn.ModuleDict({m: mlp(2 * d, d, d) for m in MODALITIES})
        # MRF
        self.mrf_router = mlp(d, d, 1)
        self.mrf_temperature = nn.Parameter(torch.tensor(1.0 / (2 * len(MODALITIES))))
        self.fusion = TransformerStack(d, cfg.fusion_depth, cfg.heads, cfg.ffn_mult, cfg.dropout)
        self.regressor = mlp(d, d, cfg.output_dim)

    # -- pieces ---------------------------------------------------------------------------
    def corrupt(self, m: str, x: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        """Missing tokens -> [UNK] representation (text) or zeros (audio/visual).
        where(), not multiply: NaN in a missing token must not leak. x [B, T, D]; avail [B, T]"""
        fill = self.unk_text.to(x.dtype) if m == "t" else torch.zeros_like(x[0, 0])
        return torch.where(avail[..., None], x, fill)

    def encode(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unified transformer with the shared bottleneck tokens. x [B, T, D]; mask [B, T] bool
        (real tokens) -> U_m [B, N, d], the bottleneck positions of the output"""
        z = self.proj[m](x)  # [B, T, d]
        z = z + sinusoidal_positions(z.shape[1], z.shape[2], z.device, z.dtype)
        B, N = x.shape[0], self.cfg.bottleneck
        ub = self.bottleneck.to(z.dtype).expand(B, -1, -1)  # [B, N, d]
        keys = torch.cat([torch.ones(B, N, dtype=torch.bool, device=x.device), mask], dim=1)
        return self.unified[m](torch.cat([ub, z], dim=1), keys)[:, :N]

    def disentangle(self, m: str, u: torch.Tensor):
        """HED. u [B, N, d] -> private [B, N, d], shared [B, N, d], weights [B, N, k_p + k_s]"""
        tau = self.hed_temperature[m].clamp(min=MIN_TEMPERATURE)
        w = torch.softmax(self.hed_router[m](u) / tau, dim=-1)
        kp = self.cfg.private_experts
        private = torch.stack([e(u) for e in self.private[m]], dim=2)  # [B, N, k_p, d]
        shared = torch.stack([e(u) for e in self.shared], dim=2)  # [B, N, k_s, d]
        return mix(w[..., :kp], private), mix(w[..., kp:], shared), w

    def fuse(self, private: dict, shared: dict):
        """MRF over the 6 sequences -> fusion transformer -> mean pool -> regressor.
        private[m], shared[m] [B, N, d] -> score [B, out], routing weights [B, N, 6]"""
        seq = torch.stack([private[m] for m in MODALITIES] + [shared[m] for m in MODALITIES], dim=2)
        tau = self.mrf_temperature.clamp(min=MIN_TEMPERATURE)
        w = torch.softmax(self.mrf_router(seq)[..., 0] / tau, dim=-1)  # [B, N, 6]
        h = mix(w, seq)  # [B, N, d]
        keys = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        h = self.fusion(h, keys).mean(dim=1)  # [B, d]
        return self.regressor(h), w

    def branch(self, m: str, x: torch.Tensor, mask: torch.Tensor, avail: torch.Tensor):
        """One modality from raw input to its disentangled pair."""
        u = self.encode(m, self.corrupt(m, x, avail), mask)
        hp, hs, _ = self.disentangle(m, u)
        return u, hp, hs

    # -- full model with per-token masks: the training path, eager reference, masked graph ---
    def forward(self, audio, text, visual, audio_mask, text_mask, visual_mask,
                audio_avail, text_avail, visual_avail):
        """x_m [B, T_m, D_m]; *_mask [B, T_m] bool (real tokens); *_avail [B, T_m] bool (token
        observed; False = missing) -> score [B, out], MRF routing weights [B, N, 6]"""
        xs = dict(zip(MODALITIES, (audio, text, visual)))
        masks = dict(zip(MODALITIES, (audio_mask, text_mask, visual_mask)))
        avails = dict(zip(MODALITIES, (audio_avail, text_avail, visual_avail)))
        private, shared = {}, {}
        for m in MODALITIES:
            _, private[m], shared[m] = self.branch(m, xs[m], masks[m], avails[m])
        return self.fuse(private, shared)

    # -- training objective ------------------------------------------------------------------
    def losses(self, xs: dict, masks: dict, avails: dict, target: torch.Tensor) -> dict:
        """L = task + dec + rec (Eq. 18). xs/masks/avails keyed by modality; target [B, out]."""
        private, shared, rec1, rec2, rec3, dec = {}, {}, 0.0, 0.0, 0.0, 0.0
        for m in MODALITIES:
            u_hat, private[m], shared[m] = self.branch(m, xs[m], masks[m], avails[m])
            with torch.no_grad():  # complete-input targets (stop-gradient)
                u = self.encode(m, xs[m], masks[m])
                hp, hs, _ = self.disentangle(m, u)
            dec = dec + abs_cosine(private[m], shared[m])  # Eq. 5
            rec1 = rec1 + F.l1_loss(self.rec_input[m](u_hat), u)  # Eq. 7
            rec2 = rec2 + F.l1_loss(self.rec_private[m](private[m]), hp) \
                + F.l1_loss(self.rec_shared[m](shared[m]), hs)  # Eq. 9
            rec3 = rec3 + F.l1_loss(self.rec_joint[m](torch.cat([private[m], shared[m]], -1)), u)  # Eq. 11
        score, _ = self.fuse(private, shared)
        task = F.mse_loss(score, target)  # Eq. 17
        rec = (rec1 + rec2 + rec3) / 3  # Eq. 12
        return {"loss": task + dec + rec, "task": task, "dec": dec, "rec": rec}

    # -- absent sensors ------------------------------------------------------------------------
    def absent_input(self, m: str, batch: int = 1):
        """The input standing for an absent sensor: every token missing, at absent_lengths.
        -> x [batch, T, D] zeros, mask all True, avail all False"""
        T = self.cfg.absent_lengths[MODALITIES.index(m)]
        D = self.cfg.input_dims[MODALITIES.index(m)]
        dev = self.bottleneck.device
        return (torch.zeros(batch, T, D, device=dev), torch.ones(batch, T, dtype=torch.bool, device=dev),
                torch.zeros(batch, T, dtype=torch.bool, device=dev))

    @torch.no_grad()
    def absent_constants(self, m: str):
        """The disentangled pair of an absent modality (a constant). -> private, shared [1, N, d]"""
        was_training = self.training
        self.eval()
        _, hp, hs = self.branch(m, *self.absent_input(m))
        self.train(was_training)
        return hp, hs

    # -- reports ---------------------------------------------------------------------------------
    def parameter_report(self) -> dict:
        """Parameters per component; active = what the specialised graph of each pattern holds
        (absent branches are folded into constants; MLCR is training-only)."""
        def count(*prefixes):
            return sum(p.numel() for n, p in self.named_parameters() if n.startswith(prefixes))

        comp = {"text_encoder": self.cfg.text_encoder_params,  # frozen featurizer, outside the graphs
                "projections": count("proj."), "bottleneck": count("bottleneck"),
                "unified_encoders": count("unified."), "unk_text": count("unk_text"),
                "hed_experts": count("private.", "shared."), "hed_routers": count("hed_"),
                "mlcr_reconstruction": count("rec_"), "mrf_router": count("mrf_"),
                "fusion": count("fusion."), "regressor": count("regressor.")}
        total = sum(comp.values())
        served = total - comp["mlcr_reconstruction"] - comp["text_encoder"]
        shared = (comp["bottleneck"] + count("shared.") + comp["mrf_router"] + comp["fusion"]
                  + comp["regressor"])
        active = {}
        for p in ALL_PATTERNS:
            active[p] = shared + sum(count(f"proj.{m}.", f"unified.{m}.", f"private.{m}.",
                                           f"hed_router.{m}.", f"hed_temperature.{m}") for m in p)
            active[p] += comp["unk_text"] if "t" in p else 0
        return {"total": total, "served": served, "total_without_text_encoder": total - comp["text_encoder"],
                "components": comp, "active": active}

    def specialise(self, pattern: str) -> "DERLSpecialised":
        return DERLSpecialised(self, pattern)


class DERLSpecialised(nn.Module):
    """DERL for one availability pattern: present modalities are computed from their inputs,
    absent ones are the precomputed constants of `absent_constants` (constant-folded branch).
    Inputs: x_m [B, T_m, D_m] then mask_m [B, T_m] for each present m (canonical order)."""

    def __init__(self, model: DERL, pattern: str):
        super().__init__()
        self.model, self.pattern = model, pattern
        for m in MODALITIES:
            if m not in pattern:
                hp, hs = model.absent_constants(m)
                self.register_buffer(f"absent_private_{m}", hp)
                self.register_buffer(f"absent_shared_{m}", hs)

    def forward(self, *inputs: torch.Tensor):
        k = len(self.pattern)
        xs, masks = inputs[:k], inputs[k:]
        private, shared = {}, {}
        B = xs[0].shape[0]
        for m in MODALITIES:
            if m in self.pattern:
                i = self.pattern.index(m)
                u = self.model.encode(m, xs[i], masks[i])  # all tokens observed
                private[m], shared[m], _ = self.model.disentangle(m, u)
            else:
                private[m] = getattr(self, f"absent_private_{m}").expand(B, -1, -1)
                shared[m] = getattr(self, f"absent_shared_{m}").expand(B, -1, -1)
        return self.model.fuse(private, shared)
