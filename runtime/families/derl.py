"""DERL, runtime side: sequence-level (one score per sample; each modality its own length).

Outputs: logits [B, 1] and router_weights [B, N, 6], the modality-routing (MRF) weights of
the fusion over the private and shared sequences a_p t_p v_p a_s t_s v_s.
"""

from __future__ import annotations

from ..patterns import MODALITIES
from .base import FUSION, Decoded, RuntimeFamily, head_outputs
from .input_kind import TensorSpec
from .momke import transformer_macs
from .sequences import SEQUENCES

FUSION_EXPERTS = tuple(f"{m}_{kind}" for kind in ("private", "shared") for m in MODALITIES)


class DERLRuntime(RuntimeFamily):
    name = "derl"
    inputs = SEQUENCES
    training_only = ("mlcr_reconstruction",)
    training_only_label = "training-only MLCR"
    dataset_layout = "mmsa"

    def graph_outputs(self, graph, config, float_dtype="float32"):
        return [TensorSpec("logits", ("batch", config["output_dim"]), float_dtype),
                TensorSpec("router_weights", ("batch", config["bottleneck"], 2 * len(MODALITIES)), float_dtype)]

    def decode(self, task, class_names, req, graph, outputs):
        labels, probs, scores = head_outputs(task, class_names, outputs["logits"])  # [B, C]
        weights = outputs["router_weights"]  # [B, N, 6]
        return Decoded(labels, probs, scores, {FUSION: weights}, {FUSION: FUSION_EXPERTS})

    def macs(self, config, modalities, batch, seq):
        """DERL with the given modalities computed from their inputs, each at its `absent_lengths`
        length (the benchmark's request length); absent modalities of a specialised graph are
        folded constants and cost nothing."""
        d, N, ffn = config["hidden"], config["bottleneck"], config["ffn_mult"]
        E = config["private_experts"] + config["shared_experts"]
        dims = dict(zip(MODALITIES, config["input_dims"]))
        lens = dict(zip(MODALITIES, config["absent_lengths"]))
        per_mod = {m: dims[m] * d * lens[m]  # projection
                   + transformer_macs(d, config["unified_depth"], ffn, N + lens[m])  # unified encoder
                   + (d * d + d * E) * N  # HED router
                   + E * 2 * d * d * N  # private + shared experts (two-layer MLPs)
                   + E * d * N  # expert mixing
                   for m in MODALITIES}
        fusion = (6 * (d * d + d) * N  # MRF router on the 6 sequences
                  + 6 * d * N  # modality mixing
                  + transformer_macs(d, config["fusion_depth"], ffn, N)
                  + d * d + d * config["output_dim"])  # regressor on the pooled vector
        return batch * (sum(per_mod[m] for m in modalities) + fusion)
