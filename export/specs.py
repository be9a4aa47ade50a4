"""What an exported bundle holds, declared in one place (docs/ARCHITECTURE.md §12): graph names, inputs and
their dynamic axes, outputs, opset, shapes used for tracing and verification, tolerances."""

from __future__ import annotations

from anymodal.runtime.families import TensorSpec, get_family  # noqa: F401  (TensorSpec: re-exported)
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES
from anymodal.runtime.requests import MASKED

OPSET = 18
GRAPH_NAMES: tuple[str, ...] = ALL_PATTERNS + (MASKED,)
PRECISIONS = ("fp32", "fp16", "int8")

# Traced at (batch 2, 7 utterances); verified at other shapes, batch 1 and 5 included.
TRACE_SHAPE = (2, 7)
VERIFY_SHAPES = ((1, 1), (1, 24), (5, 3), (5, 16))
# fp32: max-abs error; fp16/int8: max error relative to the largest reference magnitude (at
# least 1). int8's bound only catches broken graphs: its real gate is the validation accuracy.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.25}


def model_graph_specs(model, graph: str, float_dtype: str = "float32") -> tuple[list, list]:
    """(inputs, outputs) of a graph of this model, as its family declares them (the same specs
    the runtime builds its feeds from)."""
    family = get_family(model.kind)
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    return (family.graph_inputs(graph, dims, float_dtype),
            family.graph_outputs(graph, model.cfg.to_dict(), float_dtype))
