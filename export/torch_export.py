"""torch -> ONNX for the 7 specialised graphs and the masked graph. The only export module
that imports torch.

We use the TorchScript-based exporter (`dynamo=False`): on 2 CPU cores it exports one
paper-sized graph in ~2 s against 12-48 s for the torch.export path, and every graph is
verified against PyTorch at non-traced shapes before a bundle is finalised, which is what
catches trace-specialisation mistakes.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch

from anymodal.kernels.plugin_id import PLUGIN_DOMAIN

from .ort_graphs import ort_model
from .ort_optimize import fold_constants
from .plugin_function import attach_plugin_functions
from .specs import MASKED, OPSET, TRACE_SHAPE, TensorSpec, model_graph_specs


class _MaskedGraph(torch.nn.Module):
    """The full model with per-utterance availability (all inputs + masks)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)


def graph_module(model, graph: str) -> torch.nn.Module:
    if graph == MASKED:
        module = _MaskedGraph(model)
    else:
        module = model.specialise(graph)
    return module.eval()


# Per-modality sequence axes (DERL) get different lengths, so that mixing them up fails parity.
_SEQ_OF_AXIS = {"seq": lambda s: s, "seq_audio": lambda s: s, "seq_text": lambda s: s // 2 + 1,
                "seq_visual": lambda s: s + 3}


def example_feeds(specs: list[TensorSpec], batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs of a graph at (batch, seq); availability random but never all-absent."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = tuple(batch if d == "batch" else _SEQ_OF_AXIS[d](seq) if isinstance(d, str) else d
                      for d in s.shape)
        if s.name == "mask" or s.name.endswith("_mask"):
            mask = np.ones(shape, bool)
            for b in range(1, batch):  # ragged: later rows shorter
                mask[b, max(1, shape[1] - b):] = False
            feeds[s.name] = mask
        elif s.name == "avail" or s.name.endswith("_avail"):
            feeds[s.name] = rng.random(shape) < 0.6
        else:
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return feeds


def export_graph(model, graph: str, path: Path, precision: str,
                 kernels: str = "standard", fold: bool = True, ort_ops: bool = False) -> Path:
    """Trace one graph to ONNX with dynamic batch and sequence axes. kernels="fused" writes
    each router + expert mix as one trt.plugins::RouterMix node with its local function;
    ort_ops=True writes the ONNX Runtime copy (com.microsoft contrib ops, export/ort_graphs.py)."""
    dtype = "float16" if precision == "fp16" else "float32"
    if ort_ops:
        model, kernels = ort_model(model), "standard"
    if kernels == "fused":
        model = copy.deepcopy(model)
        model.fused_router = True
    module = graph_module(model, graph)
    if precision == "fp16":
        module = copy.deepcopy(module).half()  # never touch the fp32 model (the parity reference)
    inputs, outputs = model_graph_specs(model, graph, dtype)
    feeds = example_feeds(inputs, *TRACE_SHAPE, seed=0)
    args = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    dynamic = {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)}
               for s in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation/tracer notices; parity is verified after
        torch.onnx.export(module, args, str(path), input_names=[s.name for s in inputs],
                          output_names=[s.name for s in outputs], dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          custom_opsets={PLUGIN_DOMAIN: 1} if kernels == "fused" else
                          {"com.microsoft": 1} if ort_ops else None)
    if kernels == "fused":
        import onnx

        onnx.save(attach_plugin_functions(onnx.load(str(path))), str(path))
    elif precision == "fp32" and fold:  # weight arithmetic left by the tracer, folded once here (ORT CPU
        # has no fp16 kernels to fold with, and would insert Casts into an fp16 graph)
        fold_constants(path)
    return path


@torch.no_grad()
def torch_reference(model, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch fp32 outputs of a graph for the given feeds (the parity reference)."""
    module = graph_module(model, graph).float()
    inputs, _ = model_graph_specs(model, graph)
    args = [torch.from_numpy(feeds[s.name].astype(np.float32) if s.dtype.startswith("float")
                             else feeds[s.name]) for s in inputs]
    logits, weights = module(*args)
    return {"logits": logits.numpy(), "router_weights": weights.numpy()}


def versions() -> dict[str, str]:
    import onnx

    return {"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET}
