"""What an exported bundle holds, declared in one place (DESIGN §12): graph names, inputs and
their dynamic axes, outputs, opset, shapes used for tracing and verification, tolerances."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

OPSET = 18
MASKED = "masked"
GRAPH_NAMES: tuple[str, ...] = ALL_PATTERNS + (MASKED,)
PRECISIONS = ("fp32", "fp16")

# Traced at (batch 2, 7 utterances); verified at other shapes, batch 1 and 5 included.
TRACE_SHAPE = (2, 7)
VERIFY_SHAPES = ((1, 1), (1, 24), (5, 3), (5, 16))
# fp32: max-abs error; fp16: max error relative to the largest reference magnitude.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints or axis names ("batch", "seq")
    dtype: str  # numpy dtype name


def graph_inputs(graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
    """Inputs of a graph: one [batch, seq, dim] array per present modality, the padding mask
    [batch, seq], and for the masked graph the per-utterance availability [batch, seq, 3]."""
    mods = MODALITIES if graph == MASKED else tuple(graph)
    specs = [TensorSpec(MODALITY_NAMES[m], ("batch", "seq", dims[m]), float_dtype) for m in mods]
    specs.append(TensorSpec("mask", ("batch", "seq"), "bool"))
    if graph == MASKED:
        specs.append(TensorSpec("avail", ("batch", "seq", len(MODALITIES)), "bool"))
    return specs


def graph_outputs(graph: str, output_dim: int, float_dtype: str = "float32") -> list[TensorSpec]:
    n_mod = len(MODALITIES) if graph == MASKED else len(graph)
    return [TensorSpec("logits", ("batch", "seq", output_dim), float_dtype),
            TensorSpec("router_weights", ("batch", "seq", n_mod, len(MODALITIES)), float_dtype)]
