"""What the exporter asks of a model, in one place: the interface every family's PyTorch model
has (ExportableModel) and the optional capabilities a model may have, each a Protocol checked
with isinstance where the exporter (or rt-bench's default bundle) decides what to write.

Models do not inherit from these (train may not import export): they have the members, and
these declarations say which members mean what. Torch-free at import (annotations only).

    ExportableModel   kind, cfg, specialise(pattern), parameter_report(), forward(*masked inputs)
    StepGraphs        step_graph(pattern): the step module of a causal model (streaming);
                      also needs the runtime family's cache_layout(config) to be non-None
    StreamsStepGraph  streams_step_graph(): one step for S streams at once (needs StepGraphs)
    FusedRouter       fused_router: the switch that writes each router + expert mix as one
                      RouterMix TensorRT-plugin node (`--kernels fused`)
    OrtOps            ort_ops (on any submodule): the switch that writes ONNX Runtime contrib ops
                      (one MultiHeadAttention node) for the ORT-optimised graph copies
    CausalConfig      cfg.causal: the family has a causal variant (rt-bench --stream's default bundle)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ModelConfig(Protocol):
    input_dims: tuple[int, int, int]  # audio, text, visual feature dims
    output_dim: int  # classes (emotion) or 1 (sentiment)
    task: str  # "emotion" | "sentiment"

    def to_dict(self) -> dict: ...  # the run's config.json "model" section and the manifest's config


@runtime_checkable
class ExportableModel(Protocol):
    kind: str  # the family's name in both registries
    cfg: ModelConfig

    def specialise(self, pattern: str) -> Any:
        """The module of one pattern's graph: forward(*the pattern's graph inputs) ->
        (logits, router_weights), absent modalities folded away."""

    def parameter_report(self) -> dict:
        """{"total", "served", "components": {name: n}, "active": {pattern: n}} (ARCHITECTURE §4a)."""

    def __call__(self, *masked_inputs) -> tuple: ...  # the masked graph: (logits, router_weights)


@runtime_checkable
class StepGraphs(Protocol):
    def step_graph(self, pattern: str) -> Any: ...


@runtime_checkable
class StreamsStepGraph(Protocol):
    def streams_step_graph(self) -> Any: ...


@runtime_checkable
class FusedRouter(Protocol):
    fused_router: bool


@runtime_checkable
class OrtOps(Protocol):
    ort_ops: bool


@runtime_checkable
class CausalConfig(Protocol):
    causal: bool


def ort_switches(model) -> list:
    """The submodules (the model included) with an `ort_ops` switch."""
    return [m for m in model.modules() if isinstance(m, OrtOps)]


def has_causal_variant(model) -> bool:
    import dataclasses

    return isinstance(model.cfg, CausalConfig) and dataclasses.is_dataclass(model.cfg)
