"""What an exported bundle holds, declared in one place (DESIGN §12): graph names, inputs and
their dynamic axes, outputs, opset, shapes used for tracing and verification, tolerances."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

OPSET = 18
MASKED = "masked"
GRAPH_NAMES: tuple[str, ...] = ALL_PATTERNS + (MASKED,)
PRECISIONS = ("fp32", "fp16", "int8")

# Traced at (batch 2, 7 utterances); verified at other shapes, batch 1 and 5 included.
TRACE_SHAPE = (2, 7)
VERIFY_SHAPES = ((1, 1), (1, 24), (5, 3), (5, 16))
# fp32: max-abs error; fp16/int8: max error relative to the largest reference magnitude (at
# least 1). int8's bound only catches broken graphs: its real gate is the validation accuracy.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.25}


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


def derl_graph_inputs(graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
    """DERL (sequence-level): per present modality [batch, seq_<name>, dim] features, then a
    [batch, seq_<name>] token mask each; the masked graph has all three and per-token
    availability `<name>_avail` (False = token missing)."""
    mods = MODALITIES if graph == MASKED else tuple(graph)
    names = [MODALITY_NAMES[m] for m in mods]
    specs = [TensorSpec(n, ("batch", f"seq_{n}", dims[m]), float_dtype) for n, m in zip(names, mods)]
    specs += [TensorSpec(f"{n}_mask", ("batch", f"seq_{n}"), "bool") for n in names]
    if graph == MASKED:
        specs += [TensorSpec(f"{n}_avail", ("batch", f"seq_{n}"), "bool") for n in names]
    return specs


def derl_graph_outputs(output_dim: int, bottleneck: int, float_dtype: str = "float32") -> list[TensorSpec]:
    """A score per sample and the MRF routing weights over the 6 private/shared sequences."""
    return [TensorSpec("logits", ("batch", output_dim), float_dtype),
            TensorSpec("router_weights", ("batch", bottleneck, 2 * len(MODALITIES)), float_dtype)]


def model_graph_specs(model, graph: str, float_dtype: str = "float32") -> tuple[list, list]:
    """(inputs, outputs) of a graph of this model, whichever family it belongs to."""
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    if model.kind == "derl":
        return (derl_graph_inputs(graph, dims, float_dtype),
                derl_graph_outputs(model.cfg.output_dim, model.cfg.bottleneck, float_dtype))
    return graph_inputs(graph, dims, float_dtype), graph_outputs(graph, model.cfg.output_dim, float_dtype)


def graph_outputs(graph: str, output_dim: int, float_dtype: str = "float32") -> list[TensorSpec]:
    n_mod = len(MODALITIES) if graph == MASKED else len(graph)
    return [TensorSpec("logits", ("batch", "seq", output_dim), float_dtype),
            TensorSpec("router_weights", ("batch", "seq", n_mod, len(MODALITIES)), float_dtype)]
