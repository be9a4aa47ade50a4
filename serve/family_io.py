"""The Triton tensors of each model family, in one place, and Prediction -> Triton outputs.

Every tensor has Triton's leading batch axis (max_batch_size > 0), so a request carries
[B, ...]; one conversation (MoMKE) or one sample (DERL) is B = 1.

    MoMKE  audio/text/visual FP32 [B, L, dim]       optional: absent sensor = input not sent
           <modality>_present BOOL [B, L]           optional: per-utterance availability
           lengths INT64 [B, 1]                     optional: real utterances per conversation
    DERL   audio/text/visual FP32 [B, T_m, dim]     optional
           <modality>_length INT64 [B, 1]           optional: real tokens per sample
           <modality>_present BOOL [B, T_m]         optional: per-token availability
    out    pattern, graph, backend BYTES [B, 1]; probs FP32 [B, L, C] + labels BYTES [B, L]
           (emotion) or scores FP32 [B, L] / [B, 1] (sentiment); router_weights_<key> FP32

`prediction_outputs` is the single mapping from a Prediction to these outputs: the fields of
`Prediction.to_dict()` as typed tensors (router weights keyed as in the Prediction: a modality
for MoMKE, "fusion" for DERL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.runtime.requests import SEQUENCES


def sequence_inputs(bundle: Bundle) -> bool:
    """The family's input kind: token sequences with their own lengths (else conversations)."""
    return bundle.family.inputs.name == SEQUENCES


@dataclass(frozen=True)
class TensorDecl:
    name: str
    dtype: str  # Triton config type without TYPE_: FP32, BOOL, INT64, STRING
    dims: tuple[int, ...]  # without the batch axis; -1 = variable
    optional: bool = False


def _router_outputs(bundle: Bundle) -> list[TensorDecl]:
    spec = bundle.graphs["masked"]["outputs"]
    shape = next(o["shape"] for o in spec if o["name"] == "router_weights")
    if sequence_inputs(bundle):  # [batch, N, 6]: one routing over the fused modalities
        return [TensorDecl("router_weights_fusion", "FP32", (int(shape[1]), int(shape[2])))]
    experts = int(shape[-1])  # [batch, seq, P, E]: per present modality, [L, E]
    return [TensorDecl(f"router_weights_{MODALITY_NAMES[m]}", "FP32", (-1, experts)) for m in MODALITIES]


def input_decls(bundle: Bundle) -> list[TensorDecl]:
    dims = bundle.dims
    decls = [TensorDecl(MODALITY_NAMES[m], "FP32", (-1, dims[m]), True) for m in MODALITIES]
    if sequence_inputs(bundle):
        decls += [TensorDecl(f"{MODALITY_NAMES[m]}_length", "INT64", (1,), True) for m in MODALITIES]
    else:
        decls += [TensorDecl("lengths", "INT64", (1,), True)]
    decls += [TensorDecl(f"{MODALITY_NAMES[m]}_present", "BOOL", (-1,), True) for m in MODALITIES]
    return decls


def output_decls(bundle: Bundle) -> list[TensorDecl]:
    decls = [TensorDecl(n, "STRING", (1,)) for n in ("pattern", "graph", "backend")]
    per_item = () if sequence_inputs(bundle) else (-1,)  # DERL: one score per sample
    if bundle.task == "emotion":
        decls += [TensorDecl("probs", "FP32", (*per_item, len(bundle.labels))),
                  TensorDecl("labels", "STRING", per_item or (1,))]
    else:
        decls += [TensorDecl("scores", "FP32", per_item or (1,))]
    return decls + _router_outputs(bundle)


def predict_kwargs(sequence_model: bool, arrays: dict[str, np.ndarray]) -> dict:
    """Triton inputs of one (grouped) request -> Runtime.predict keyword arguments."""
    kwargs = {MODALITY_NAMES[m]: arrays.get(MODALITY_NAMES[m]) for m in MODALITIES}
    present = {m: arrays[f"{MODALITY_NAMES[m]}_present"] for m in MODALITIES
               if f"{MODALITY_NAMES[m]}_present" in arrays}
    if sequence_model:
        lengths = {m: arrays[f"{MODALITY_NAMES[m]}_length"].reshape(-1) for m in MODALITIES
                   if f"{MODALITY_NAMES[m]}_length" in arrays} or None
    else:
        lengths = arrays["lengths"].reshape(-1) if "lengths" in arrays else None
    return dict(kwargs, present=present or None, lengths=lengths)


def _strings(value: str, batch: int) -> np.ndarray:
    return np.full((batch, 1), value.encode(), dtype=object)


def prediction_outputs(pred, batch: int, sequence_model: bool) -> dict[str, np.ndarray]:
    """A batched Prediction ([B, ...] arrays) -> Triton output tensors by name."""
    out = {"pattern": _strings(pred.pattern, batch), "graph": _strings(pred.graph, batch),
           "backend": _strings(pred.backend, batch)}
    if pred.probs is not None:
        out["probs"] = pred.probs.astype(np.float32)
        out["labels"] = np.vectorize(lambda s: s.encode(), otypes=[object])(pred.labels)
    if pred.scores is not None:
        out["scores"] = pred.scores.astype(np.float32)[:, None] if sequence_model else pred.scores.astype(np.float32)
    for key, w in pred.router_weights.items():
        out[f"router_weights_{MODALITY_NAMES.get(key, key)}"] = w.astype(np.float32)
    return out
