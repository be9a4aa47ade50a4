"""The runtime half of a model family (numpy only): what a family tells the Runtime, the
exporter, rt-bench and the reports. One subclass per family, registered once.

    class MyFamily(RuntimeFamily):
        name = "myfamily"                 # the manifest's model.kind
        inputs = UtteranceInputs          # or SequenceInputs: request checks + graph inputs + feeds
        def graph_outputs(self, graph, config, float_dtype): ...   # [TensorSpec]
        def decode(self, task, labels, req, graph, outputs): ...   # -> Decoded
        def macs(self, config, modalities, batch, seq): ...        # analytic multiply-adds
    register_family(MyFamily())
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..requests import Request
from .inputs import TensorSpec, UtteranceInputs


@dataclass
class Decoded:
    """A family's reading of one batch of graph outputs (batched, float32)."""

    labels: np.ndarray | None  # [B, ...] class names (classification)
    probs: np.ndarray | None  # [B, ..., C] (classification)
    scores: np.ndarray | None  # [B, ...] regression scores
    router_weights: dict[str, np.ndarray] = field(default_factory=dict)  # expert input -> [B, ..., E]
    router_experts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # expert input -> E names


def softmax(x: np.ndarray) -> np.ndarray:
    e = x - x.max(axis=-1, keepdims=True)  # one new array, then in place
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def head_outputs(task: str, class_names, logits: np.ndarray):
    """(labels, probs, scores) from logits [..., C]: softmax + names for emotion, the single
    logit as a score otherwise. class_names: a list, or an object array (the Runtime passes
    one, made once). scores is a view of logits."""
    if task == "emotion":
        probs = softmax(logits)
        return np.asarray(class_names, dtype=object)[probs.argmax(-1)], probs, None
    return None, None, logits[..., 0]


class RuntimeFamily:
    name: str = "abstract"
    inputs = UtteranceInputs  # the input kind: UtteranceInputs | SequenceInputs
    # parameter-report components that are in no graph (training-only), and how to call them
    training_only: tuple[str, ...] = ()
    training_only_label: str = "training-only parts"
    # the dataset layout its runs are trained and scored on (rt-report accuracy reads it)
    dataset_layout: str = "gcnet"

    def graph_inputs(self, graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
        return self.inputs.graph_inputs(graph, dims, float_dtype)

    def graph_outputs(self, graph: str, config: dict, float_dtype: str = "float32") -> list[TensorSpec]:
        raise NotImplementedError  # abstract

    def feeds(self, req: Request, graph: str, dims: dict[str, int], float_dtype: str,
              config: dict) -> dict[str, np.ndarray]:
        """Feeds of `graph` (req.graph, or "masked" for the masked graph) in its input order."""
        return self.inputs.feeds(req, graph, dims, float_dtype, config)

    def decode(self, task: str, class_names: list[str], req: Request, graph: str,
               outputs: dict[str, np.ndarray]) -> Decoded:
        raise NotImplementedError  # abstract

    def macs(self, config: dict, modalities: str, batch: int, seq: int | None) -> int:
        raise NotImplementedError  # abstract
