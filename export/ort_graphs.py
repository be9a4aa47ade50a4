"""The ORT-optimised copy of each graph: the same model traced with its `ort_ops` switches on,
so attention is one `com.microsoft::MultiHeadAttention` node (experts folded into the batch
axis) instead of a chain of Reshape/Transpose/Gather/MatMul/Where/Softmax. ONNX Runtime on the
CPU serves it; TensorRT and the GPU providers keep the portable standard-op graph.

Written beside the portable graphs (`graphs/<name>.ort.onnx`) so that both share one
deduplicated `weights.bin` (external data may not climb out of a graph's folder), and listed in
the variant's `ort_graphs` with the oldest onnxruntime that runs them.
"""

from __future__ import annotations

import copy

from .capabilities import FusedRouter, ort_switches

# Precisions that get an ORT copy: fp32, and int8 (its MatMul weights quantised from the fp32
# copy). fp16 has none: ORT's CPU provider has no fp16 kernels for these ops.
ORT_COPY_PRECISIONS = ("fp32", "int8")


def ort_file(graph: str) -> str:
    return f"{graph}.ort.onnx"


def has_ort_ops(model) -> bool:
    """Whether any module of the model can emit contrib ops (else the copy would equal the graph)."""
    return bool(ort_switches(model))


def ort_model(model):
    """A copy of `model` with every `ort_ops` switch on (the parity reference stays untouched)."""
    model = copy.deepcopy(model)
    for m in ort_switches(model):
        m.ort_ops = True
    if isinstance(model, FusedRouter):  # the RouterMix plugin node is for TensorRT, not ORT
        model.fused_router = False
    return model


def contrib_ops(paths) -> list[str]:
    """The com.microsoft ops the stored copies use (what the manifest says they need)."""
    import onnx

    ops = set()
    for p in paths:
        ops |= {f"{n.domain}::{n.op_type}" for n in onnx.load(str(p), load_external_data=False).graph.node
                if n.domain == "com.microsoft"}
    return sorted(ops)


def ort_graphs_entry(rel_dir: str, graphs, paths) -> dict:
    """The variant's `ort_graphs` record."""
    from anymodal.runtime.backends.ort import ORT_GRAPHS_MIN_VERSION

    return {"min_onnxruntime": ORT_GRAPHS_MIN_VERSION, "contrib_ops": contrib_ops(paths),
            "graphs": {g: {"file": f"{rel_dir}/{ort_file(g)}", "data_files": [f"{rel_dir}/weights.bin"]}
                       for g in graphs}}
