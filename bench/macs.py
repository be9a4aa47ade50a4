"""Analytic multiply-accumulate counts of MoMKE and DERL graphs (matmul-like ops only, as FLOP counters
report them). Torch-free: computed from the model config in a bundle's manifest."""

from __future__ import annotations

from anymodal.runtime.patterns import MODALITIES


def _transformer_macs(d: int, depth: int, ffn_mult: int, L: int, out_proj: bool = True) -> int:
    per_block = (3 * d * d * L  # fused QKV
                 + 2 * L * L * d  # scores + weighted sum
                 + (d * d * L if out_proj else 0)  # output projection
                 + 2 * ffn_mult * d * d * L)  # FFN
    return depth * per_block


def momke_macs(config: dict, modalities: str, batch: int, seq: int) -> int:
    """MACs of running MoMKE with the given modalities encoded (all 3 for the masked graph and
    "reference", the authors' code: all 9 expert passes)."""
    if modalities == "reference":
        modalities = "atv"
    d, depth, ffn, out = config["hidden"], config["depth"], config["ffn_mult"], config["output_dim"]
    rh = config.get("router_mult", 1) * d
    dims = dict(zip(MODALITIES, config["input_dims"]))
    L = seq
    per_mod = {m: dims[m] * d * L  # projection
               + 3 * _transformer_macs(d, depth, ffn, L, config.get("attn_out_proj", True))  # 3 experts
               + (d * rh + rh * 3) * L  # router MLP
               + 3 * d * L  # expert mixing
               + (d * 3 * d + d * out) * L  # its blocks of the fusion layer and of the head (skip)
               for m in MODALITIES}
    shared = 3 * d * out * L  # head on ReLU(fusion)
    return batch * (sum(per_mod[m] for m in modalities) + shared)


def derl_macs(config: dict, modalities: str, batch: int) -> int:
    """MACs of DERL with the given modalities computed from their inputs, each at its
    `absent_lengths` length (the benchmark's request length); absent modalities of a
    specialised graph are folded constants and cost nothing."""
    d, N, ffn = config["hidden"], config["bottleneck"], config["ffn_mult"]
    E = config["private_experts"] + config["shared_experts"]
    dims = dict(zip(MODALITIES, config["input_dims"]))
    lens = dict(zip(MODALITIES, config["absent_lengths"]))
    per_mod = {m: dims[m] * d * lens[m]  # projection
               + _transformer_macs(d, config["unified_depth"], ffn, N + lens[m])  # unified encoder
               + (d * d + d * E) * N  # HED router
               + E * 2 * d * d * N  # private + shared experts (two-layer MLPs)
               + E * d * N  # expert mixing
               for m in MODALITIES}
    fusion = (6 * (d * d + d) * N  # MRF router on the 6 sequences
              + 6 * d * N  # modality mixing
              + _transformer_macs(d, config["fusion_depth"], ffn, N)
              + d * d + d * config["output_dim"])  # regressor on the pooled vector
    return batch * (sum(per_mod[m] for m in modalities) + fusion)


def model_macs(kind: str, config: dict, modalities: str, batch: int, seq: int | None) -> int:
    if kind == "derl":
        return derl_macs(config, modalities, batch)
    return momke_macs(config, modalities, batch, seq)
