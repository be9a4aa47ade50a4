"""Analytic multiply-accumulate counts of MoMKE graphs (matmul-like ops only, as FLOP counters
report them). Torch-free: computed from the model config in a bundle's manifest."""

from __future__ import annotations

from anymodal.runtime.patterns import MODALITIES


def _expert_macs(d: int, depth: int, ffn_mult: int, L: int) -> int:
    per_block = (3 * d * d * L  # fused QKV
                 + 2 * L * L * d  # scores + weighted sum
                 + d * d * L  # output projection
                 + 2 * ffn_mult * d * d * L)  # FFN
    return depth * per_block


def momke_macs(config: dict, modalities: str, batch: int, seq: int) -> int:
    """MACs of running MoMKE with the given modalities encoded (all 3 for the masked graph)."""
    d, depth, ffn, out = config["hidden"], config["depth"], config["ffn_mult"], config["output_dim"]
    dims = dict(zip(MODALITIES, config["input_dims"]))
    L = seq
    per_mod = {m: dims[m] * d * L  # projection
               + 3 * _expert_macs(d, depth, ffn, L)  # the three experts on this modality
               + (d * d + 3 * d) * L  # router MLP
               + 3 * d * L  # expert mixing
               + d * 3 * d * L  # its block of the first fusion layer
               for m in MODALITIES}
    shared = 9 * d * d * L + 3 * d * out * L  # second fusion layer + head
    return batch * (sum(per_mod[m] for m in modalities) + shared)
