"""Static check of model-local functions: no formal input, output or inner value of a function
may share a name with anything in the graph that calls it.

Why: onnx-tensorrt's local-function importer (onnxOpImporters.cpp, LocalFunctionImporter)
binds a formal input to the outer tensor of the same name whenever one exists ("Found input:
... that does not correspond to an outside scope name. Behavior may be incorrect.") instead of
to the node's actual input, and an inner node reading a name the function does not define
reads the outer one. ONNX Runtime renames on inlining, so parity checks on CPU cannot see it.
Run on every graph a bundle writes (export/bundle.py)."""

from __future__ import annotations

from pathlib import Path

import onnx

from anymodal.runtime.errors import ExportError


def graph_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name of a graph and of its subgraphs (If/Loop bodies)."""
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names |= set(node.input) | set(node.output)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                names |= graph_names(sub)
    names.discard("")  # an omitted optional input
    return names


def function_local_names(fn: onnx.FunctionProto) -> set[str]:
    """A function's formal inputs and outputs and every value its nodes read or write."""
    names = set(fn.input) | set(fn.output)
    for node in fn.node:
        names |= set(node.input) | set(node.output)
    names.discard("")
    return names


def function_name_collisions(model: onnx.ModelProto) -> dict[str, list[str]]:
    """{"domain::function": sorted colliding names} for the functions the graph calls."""
    outer = graph_names(model.graph)
    called = {(n.domain, n.op_type) for n in model.graph.node}
    out = {}
    for fn in model.functions:
        if (fn.domain, fn.name) in called:
            clash = sorted(function_local_names(fn) & outer)
            if clash:
                out[f"{fn.domain}::{fn.name}"] = clash
    return out


def check_function_names(path: str | Path) -> None:
    """Raise ExportError naming the graph, the function and the shared names."""
    model = onnx.load(str(path), load_external_data=False)
    clashes = function_name_collisions(model)
    if clashes:
        detail = "; ".join(f"{fn}: {', '.join(names)}" for fn, names in clashes.items())
        raise ExportError(f"{Path(path).name}: local function names shared with the graph ({detail}); "
                          "TensorRT's parser would bind them to the graph's tensors")
