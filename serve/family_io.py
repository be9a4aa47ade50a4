"""The Triton tensors of a bundle, in one place, and Prediction -> Triton outputs.

Every tensor has Triton's leading batch axis (max_batch_size > 0), so a request carries
[B, ...]; one conversation or one sample is B = 1. Nothing here asks which family or input
kind it serves: the family's input kind (runtime/families/utterances.py, sequences.py)
declares its length inputs and how many rows per sample its outputs have, and the family
declares its router-weights keys (RuntimeFamily.router_outputs).

    in     audio/text/visual FP32 [B, T, dim]       optional: absent sensor = input not sent
           <modality>_present BOOL [B, T]           optional: per-item availability
           the kind's lengths                       utterances: lengths INT64 [B, 1];
                                                    sequences: <modality>_length INT64 [B, 1]
    out    pattern, graph, backend BYTES [B, 1]; probs FP32 [B, (L,) C] + labels BYTES [B, L | 1]
           (emotion) or scores FP32 [B, L | 1] (sentiment); router_weights_<key> FP32, one per
           key of the family's router_outputs (a modality's name, or "fusion")

`prediction_outputs` is the single mapping from a Prediction to these outputs: the fields of
`Prediction.to_dict()` as typed tensors (a per-sample scalar gets an axis of 1, as declared).

The streaming model (Triton's sequence batcher, serve/sequences.py) takes one turn per request:

    in     audio/text/visual FP32 [1, dim]             optional: absent sensor = input not sent
           <modality>_present BOOL [1, 1]              optional: False = that sensor is absent
    out    pattern, graph, backend, mode BYTES [1, 1]; turn, position INT64 [1, 1]; probs FP32
           [1, C] + labels BYTES [1, 1] (emotion) or scores FP32 [1, 1]; router_weights_<key>
           FP32 [1, ...] (a router output's shape for one item), present modalities only
"""

from __future__ import annotations

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import RequestError
from anymodal.runtime.families import ServingTensor
from anymodal.runtime.families.input_kind import present_key
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

TensorDecl = ServingTensor  # name, dtype (Triton type without TYPE_), dims without batch, optional


def router_output_name(key: str) -> str:
    """Triton output of a Prediction.router_weights key (a modality letter -> its name)."""
    return f"router_weights_{MODALITY_NAMES.get(key, key)}"


def input_decls(bundle: Bundle) -> list[TensorDecl]:
    dims = bundle.dims
    decls = [TensorDecl(MODALITY_NAMES[m], "FP32", (-1, dims[m]), True) for m in MODALITIES]
    decls += bundle.family.inputs.serving_lengths(dims)
    return decls + [TensorDecl(present_key(m), "BOOL", (-1,), True) for m in MODALITIES]


def output_decls(bundle: Bundle) -> list[TensorDecl]:
    decls = [TensorDecl(n, "STRING", (1,)) for n in ("pattern", "graph", "backend")]
    per_item = bundle.family.inputs.output_item_dims  # (-1,): a row per item; (): one per sample
    if bundle.task == "emotion":
        decls += [TensorDecl("probs", "FP32", (*per_item, len(bundle.labels))),
                  TensorDecl("labels", "STRING", per_item or (1,))]
    else:
        decls += [TensorDecl("scores", "FP32", per_item or (1,))]
    routers = bundle.family.router_outputs(bundle.model["config"])
    return decls + [TensorDecl(router_output_name(k), "FP32", dims) for k, dims in routers.items()]


def predict_kwargs(input_kind, arrays: dict[str, np.ndarray]) -> dict:
    """Triton inputs of one (grouped) request -> Runtime.predict keyword arguments, for a family
    of `input_kind` (Runtime.family.inputs)."""
    kwargs = {MODALITY_NAMES[m]: arrays.get(MODALITY_NAMES[m]) for m in MODALITIES}
    present = {m: arrays[present_key(m)] for m in MODALITIES if present_key(m) in arrays}
    return dict(kwargs, present=present or None, lengths=input_kind.lengths_from_serving(arrays))


def _strings(value: str, batch: int) -> np.ndarray:
    return np.full((batch, 1), value.encode(), dtype=object)


def _per_sample(x: np.ndarray) -> np.ndarray:
    """[B] (one value per sample) -> [B, 1], as declared; [B, L] unchanged."""
    return x[:, None] if x.ndim == 1 else x


def prediction_outputs(pred, batch: int) -> dict[str, np.ndarray]:
    """A batched Prediction ([B, ...] arrays) -> Triton output tensors by name."""
    out = {"pattern": _strings(pred.pattern, batch), "graph": _strings(pred.graph, batch),
           "backend": _strings(pred.backend, batch)}
    if pred.probs is not None:
        out["probs"] = pred.probs.astype(np.float32)
        out["labels"] = _per_sample(np.vectorize(lambda s: s.encode(), otypes=[object])(pred.labels))
    if pred.scores is not None:
        out["scores"] = _per_sample(pred.scores.astype(np.float32))
    for key, w in pred.router_weights.items():
        out[router_output_name(key)] = w.astype(np.float32)
    return out


# -- one conversation turn per request (the streaming model) -----------------------------------
def turn_input_decls(bundle: Bundle) -> list[TensorDecl]:
    dims = bundle.dims
    return ([TensorDecl(MODALITY_NAMES[m], "FP32", (dims[m],), True) for m in MODALITIES]
            + [TensorDecl(present_key(m), "BOOL", (1,), True) for m in MODALITIES])


def turn_output_decls(bundle: Bundle) -> list[TensorDecl]:
    decls = [TensorDecl(n, "STRING", (1,)) for n in ("pattern", "graph", "backend", "mode")]
    decls += [TensorDecl(n, "INT64", (1,)) for n in ("turn", "position")]
    if bundle.task == "emotion":
        decls += [TensorDecl("probs", "FP32", (len(bundle.labels),)), TensorDecl("labels", "STRING", (1,))]
    else:
        decls += [TensorDecl("scores", "FP32", (1,))]
    per_item = len(bundle.family.inputs.output_item_dims)  # a turn is one item: its axes dropped
    routers = bundle.family.router_outputs(bundle.model["config"])
    return decls + [TensorDecl(router_output_name(k), "FP32", dims[per_item:]) for k, dims in routers.items()]


def turn_kwargs(arrays: dict[str, np.ndarray]) -> dict:
    """Triton inputs of one turn -> submit_turn keyword arguments ([1, dim] per modality; a
    sensor whose <modality>_present is False is left out). RequestError for a bad flag."""
    kwargs = {}
    for m in MODALITIES:
        name, flag = MODALITY_NAMES[m], arrays.get(present_key(m))
        if flag is not None and flag.shape != (1, 1):
            raise RequestError(f"{present_key(m)}: one flag per turn, shape [1, 1]; got {list(flag.shape)}")
        used = flag is None or bool(flag[0, 0])
        if flag is not None and used and arrays.get(name) is None:
            raise RequestError(f"{present_key(m)} is true but the turn has no {name} features")
        kwargs[name] = arrays.get(name) if used else None
    return kwargs


def turn_outputs(turn) -> dict[str, np.ndarray]:
    """A TurnPrediction -> the streaming model's output tensors by name (batch axis 1)."""
    out = {n: _strings(getattr(turn, n), 1) for n in ("pattern", "graph", "backend", "mode")}
    out.update({n: np.array([[getattr(turn, n)]], np.int64) for n in ("turn", "position")})
    if turn.probs is not None:
        out["probs"] = turn.probs.astype(np.float32)[None]
        out["labels"] = _strings(turn.label, 1)
    if turn.score is not None:
        out["scores"] = np.array([[turn.score]], np.float32)
    for key, w in turn.router_weights.items():
        out[router_output_name(key)] = np.asarray(w, np.float32)[None]
    return out
