"""The runtime half of a model family (numpy only): what a family tells the Runtime, the
exporter, rt-bench and the reports. One subclass per family, registered once.

    class MyFamily(RuntimeFamily):
        name = "myfamily"                 # the manifest's model.kind
        inputs = UTTERANCES               # or SEQUENCES: the input kind (request checks, graph
                                          # inputs, feeds, serving tensors, calibration)
        dataset_layout = "gcnet"          # the train-side layout it is trained and scored on
        def graph_outputs(self, graph, config, float_dtype): ...   # [TensorSpec]
        def decode(self, task, labels, req, graph, outputs): ...   # -> Decoded
        def macs(self, config, modalities, batch, seq): ...        # analytic multiply-adds
    register_family(MyFamily())
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..patterns import MODALITIES, MODALITY_NAMES
from ..requests import MASKED, Request
from .input_kind import TensorSpec
from .utterances import UTTERANCES


@dataclass
class Decoded:
    """A family's reading of one batch of graph outputs (batched, float32)."""

    labels: np.ndarray | None  # [B, ...] class names (classification)
    probs: np.ndarray | None  # [B, ..., C] (classification)
    scores: np.ndarray | None  # [B, ...] regression scores
    router_weights: dict[str, np.ndarray] = field(default_factory=dict)  # expert input -> [B, ..., E]
    router_experts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # expert input -> E names


def softmax(x: np.ndarray) -> np.ndarray:
    # the ufuncs' reduce called directly: ndarray.max/.sum go through a Python wrapper first
    e = x - np.maximum.reduce(x, axis=-1, keepdims=True)  # one new array, then in place
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def head_outputs(task: str, class_names, logits: np.ndarray):
    """(labels, probs, scores) from logits [..., C]: softmax + names for emotion, the single
    logit as a score otherwise. class_names: a list, or an object array (the Runtime passes
    one, made once). scores is a view of logits."""
    if task == "emotion":
        probs = softmax(logits)
        names = class_names if isinstance(class_names, np.ndarray) else np.asarray(class_names, dtype=object)
        return names[logits.argmax(-1)], probs, None  # argmax of the logits = argmax of probs
    return None, None, logits[..., 0]


class RuntimeFamily:
    name: str = "abstract"
    inputs = UTTERANCES  # the input kind (an InputKind instance): UTTERANCES | SEQUENCES
    # parameter-report components that are in no graph (training-only), and how to call them
    training_only: tuple[str, ...] = ()
    training_only_label: str = "training-only parts"
    # the name of the dataset layout its runs are trained and scored on (train/data/layouts.py:
    # reader, evaluation protocol, calibration samples); the train family's `layout` has it too
    dataset_layout: str = "gcnet"
    # Conversations (runtime/conversation.py): a family whose graphs score the utterances of one
    # conversation can follow a live one, turn by turn (at least by re-scoring the window)
    supports_conversation: bool = False

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

    def router_outputs(self, config: dict) -> dict[str, tuple[int, ...]]:
        """The keys of Decoded.router_weights (= Prediction.router_weights) and each one's
        per-sample shape (-1: a length axis): what a server declares. Default: one key, FUSION,
        shaped like the masked graph's router_weights without its batch axis; a family that
        decodes other keys overrides this (MoMKE: one per modality)."""
        spec = next(s for s in self.graph_outputs(MASKED, config) if s.name == "router_weights")
        return {FUSION: tuple(d if isinstance(d, int) else -1 for d in spec.shape[1:])}

    # -- step graphs (streaming conversations) ---------------------------------------------
    def cache_layout(self, config: dict) -> tuple[int, tuple] | None:
        """(n, shape): a causal model's step graphs read n cache tensors per modality stream, each
        of `shape` with the axis named CONTEXT holding one slot per utterance of the window (the
        Conversation preallocates them at max_context slots); None when the model has no step
        graphs (bidirectional: conversations then re-score the window)."""
        return None

    def step_uses_position(self, config: dict) -> bool:
        """Whether the step graphs take the utterance's position in the window (models with
        position embeddings)."""
        return True

    def step_graph_inputs(self, pattern: str, dims: dict[str, int], config: dict,
                          float_dtype: str = "float32") -> list[TensorSpec]:
        """A step graph scores one new utterance: per present modality its features [1, 1, dim],
        the utterance's position in the window (int64 [1]) when the model uses positions, then per
        present modality its stream's caches past_<name>_<i> (shape with a CONTEXT axis: slots
        0..cached-1 hold the stream's earlier present utterances, oldest first, the rest is
        ignored) and cached_<name> (int64 [1]: how many slots are filled, 0 on its first turn)."""
        n, shape = self.cache_layout(config)
        names = [MODALITY_NAMES[m] for m in pattern]
        specs = [TensorSpec(name, (1, 1, dims[m]), float_dtype) for name, m in zip(names, pattern)]
        if self.step_uses_position(config):
            specs.append(TensorSpec(STEP_POSITION, (1,), "int64"))
        for name in names:
            specs += [TensorSpec(f"{PAST}{name}_{i}", shape, float_dtype) for i in range(n)]
            specs.append(TensorSpec(f"{CACHED}{name}", (1,), "int64"))
        return specs

    def step_graph_outputs(self, pattern: str, config: dict, float_dtype: str = "float32") -> list[TensorSpec]:
        """The pattern graph's outputs at batch 1, seq 1 (decoded like them), then per present
        modality new_<name> [n, *slot]: the new utterance's slot of each of its n caches (the
        cache shape without the CONTEXT axis), written at slot `cached` by the caller."""
        one = {"batch": 1, "seq": 1}
        outs = [TensorSpec(s.name, tuple(one.get(d, d) for d in s.shape), s.dtype)
                for s in self.graph_outputs(pattern, config, float_dtype)]
        n, shape = self.cache_layout(config)
        slot = tuple(d for d in shape if d != CONTEXT)
        return outs + [TensorSpec(f"{NEW}{MODALITY_NAMES[m]}", (n, *slot), float_dtype) for m in pattern]

    # -- the batched step graph (turns of many conversations as one call) ---------------------
    def streams_step_graph_inputs(self, dims: dict[str, int], config: dict,
                                  float_dtype: str = "float32") -> list[TensorSpec]:
        """One step for S streams, each with its own pattern: every modality's features
        [S, 1, dim] (zeros where absent), position [S], STEP_STREAM [S] int64 (each stream's
        row in the pools), STEP_PRESENT [S, 3] bool (modality reported this turn), then per
        modality its cache pools past_<name>_<i> [POOL, *cache shape] (a row per stream of the
        caller, read in place) and cached_<name> [S]."""
        n, shape = self.cache_layout(config)
        names = [MODALITY_NAMES[m] for m in MODALITIES]
        specs = [TensorSpec(name, (STREAMS, 1, dims[m]), float_dtype) for name, m in zip(names, MODALITIES)]
        if self.step_uses_position(config):
            specs.append(TensorSpec(STEP_POSITION, (STREAMS,), "int64"))
        specs += [TensorSpec(STEP_STREAM, (STREAMS,), "int64"),
                  TensorSpec(STEP_PRESENT, (STREAMS, len(MODALITIES)), "bool")]
        for name in names:
            specs += [TensorSpec(f"{PAST}{name}_{i}", (POOL, *shape), float_dtype) for i in range(n)]
            specs.append(TensorSpec(f"{CACHED}{name}", (STREAMS,), "int64"))
        return specs

    def streams_step_graph_outputs(self, config: dict, float_dtype: str = "float32") -> list[TensorSpec]:
        """The masked graph's outputs at batch S, seq 1 (every modality; an absent one's entries
        are to be ignored), then new_<name> [S, n, *slot] per modality (row s written at stream
        s's slot `cached` where s reported the modality)."""
        outs = [TensorSpec(s.name, tuple(STREAMS if d == "batch" else 1 if d == "seq" else d for d in s.shape), s.dtype)
                for s in self.graph_outputs(MASKED, config, float_dtype)]
        n, shape = self.cache_layout(config)
        slot = tuple(d for d in shape if d != CONTEXT)
        return outs + [TensorSpec(f"{NEW}{MODALITY_NAMES[m]}", (STREAMS, n, *slot), float_dtype) for m in MODALITIES]

FUSION = "fusion"  # the router-weights key of a routing over the fused modalities
STEP_POSITION = "position"  # step-graph input: the utterance's index in the window
CONTEXT = "context"  # the slot axis of a cache tensor (its length: the Conversation's max_context)
PAST, CACHED, NEW = "past_", "cached_", "new_"  # step-graph cache names (+ modality name)
STEP_STREAM = "stream"  # batched step-graph input: each stream's row in the cache pools
STEP_PRESENT = "present"  # batched step-graph input: [S, 3] which modalities each stream reported
STREAMS_STEP_GRAPH = "steps"  # the batched step graph (one for every pattern)
STREAMS, POOL = "streams", "pool"  # batched step graphs: the stream axis, the pools' row axis


def step_graph_name(pattern: str) -> str:
    """The step graph of a pattern (key in a variant's `step_graphs`, file stem)."""
    return f"step_{pattern}"
