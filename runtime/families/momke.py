"""MoMKE, runtime side: utterance-level (one prediction per utterance of a conversation).

Outputs: logits [B, L, C] and router_weights [B, L, P, 3] (P = the graph's modalities), the
soft-router weights over the three modality knowledge experts.
"""

from __future__ import annotations

import numpy as np

from ..patterns import MODALITIES
from ..requests import MASKED
from .base import CONTEXT, Decoded, RuntimeFamily, head_outputs
from .input_kind import TensorSpec
from .utterances import UTTERANCES

EXPERTS = ("audio_expert", "text_expert", "visual_expert")


def transformer_macs(d: int, depth: int, ffn_mult: int, L: int, out_proj: bool = True) -> int:
    per_block = (3 * d * d * L  # fused QKV
                 + 2 * L * L * d  # scores + weighted sum
                 + (d * d * L if out_proj else 0)  # output projection
                 + 2 * ffn_mult * d * d * L)  # FFN
    return depth * per_block


class MoMKERuntime(RuntimeFamily):
    name = "momke"
    inputs = UTTERANCES
    training_only = ("unimodal_heads",)
    training_only_label = "stage-1 heads"
    supports_conversation = True

    def cache_layout(self, config):
        """Causal MoMKE: per modality stream, the keys and the values of every block (K0, V0,
        K1, V1, …), each [3 experts, heads, context, d / heads]: the layout attention reads
        directly (q·Kᵀ and p·V are plain batched MatMuls over every slot, no copies)."""
        if not config.get("causal", False):
            return None
        H = config["heads"]
        return 2 * config["depth"], (len(EXPERTS), H, CONTEXT, config["hidden"] // H)

    def step_uses_position(self, config):
        return bool(config.get("positions", True))  # sinusoidal positions (paper preset)

    def graph_outputs(self, graph, config, float_dtype="float32"):
        n_mod = len(MODALITIES) if graph == MASKED else len(graph)
        return [TensorSpec("logits", ("batch", "seq", config["output_dim"]), float_dtype),
                TensorSpec("router_weights", ("batch", "seq", n_mod, len(MODALITIES)), float_dtype)]

    def router_outputs(self, config):
        """One [L, 3] routing per modality, keyed by the modality (absent ones: not returned)."""
        return {m: (-1, len(EXPERTS)) for m in MODALITIES}

    def decode(self, task, class_names, req, graph, outputs):
        labels, probs, scores = head_outputs(task, class_names, outputs["logits"])  # [B, L, C]
        weights = outputs["router_weights"]  # [B, L, P, 3]
        if graph == MASKED:  # availability varies per utterance: 0 where m was not used
            router = {m: np.where(req.present[m][..., None], weights[:, :, i], np.float32(0))
                      for i, m in enumerate(MODALITIES) if m in req.pattern}
        else:  # m is used at every real utterance (padding rows are zeroed by the Runtime):
            router = {m: weights[:, :, i] for i, m in enumerate(graph)}  # views [B, L, 3]
        return Decoded(labels, probs, scores, router, {m: EXPERTS for m in router})

    def macs(self, config, modalities, batch, seq):
        """Running MoMKE with the given modalities encoded (all 3 for the masked graph and for
        the authors' code, which runs all 9 expert passes)."""
        d, depth, ffn, out = config["hidden"], config["depth"], config["ffn_mult"], config["output_dim"]
        rh = config.get("router_mult", 1) * d
        dims = dict(zip(MODALITIES, config["input_dims"]))
        L = seq
        per_mod = {m: dims[m] * d * L  # projection
                   + 3 * transformer_macs(d, depth, ffn, L, config.get("attn_out_proj", True))  # 3 experts
                   + (d * rh + rh * 3) * L  # router MLP
                   + 3 * d * L  # expert mixing
                   + (d * 3 * d + d * out) * L  # its blocks of the fusion layer and of the head (skip)
                   for m in MODALITIES}
        shared = 3 * d * out * L  # head on ReLU(fusion)
        return batch * (sum(per_mod[m] for m in modalities) + shared)
