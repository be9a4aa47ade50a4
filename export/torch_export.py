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
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.train.models.fused import PLUGIN_DOMAIN

from .plugin_function import attach_plugin_functions
from .specs import MASKED, OPSET, TRACE_SHAPE, TensorSpec, graph_inputs, graph_outputs


class _MaskedGraph(torch.nn.Module):
    """The full model with per-utterance availability (all inputs + masks)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, audio, text, visual, mask, avail):
        return self.model(audio, text, visual, mask, avail)


def graph_module(model, graph: str) -> torch.nn.Module:
    if graph == MASKED:
        module = _MaskedGraph(model)
    else:
        module = model.specialise(graph)
    return module.eval()


def example_feeds(specs: list[TensorSpec], batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs of a graph at (batch, seq); availability random but never all-absent."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = tuple(batch if d == "batch" else seq if d == "seq" else d for d in s.shape)
        if s.name == "mask":
            mask = np.ones(shape, bool)
            if batch > 1:  # ragged conversations: later rows shorter
                for b in range(1, batch):
                    mask[b, max(1, seq - b):] = False
            feeds[s.name] = mask
        elif s.name == "avail":
            feeds[s.name] = rng.random(shape) < 0.6
        else:
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return feeds


def export_graph(model, graph: str, path: Path, dims: dict[str, int], precision: str,
                 kernels: str = "standard") -> Path:
    """Trace one graph to ONNX with dynamic batch and sequence axes. kernels="fused" writes
    each router + expert mix as one trt.plugins::RouterMix node with its local function."""
    dtype = "float16" if precision == "fp16" else "float32"
    if kernels == "fused":
        model = copy.deepcopy(model)
        model.fused_router = True
    module = graph_module(model, graph)
    if precision == "fp16":
        module = copy.deepcopy(module).half()  # never touch the fp32 model (the parity reference)
    inputs = graph_inputs(graph, dims, dtype)
    outputs = graph_outputs(graph, model.cfg.output_dim, dtype)
    feeds = example_feeds(inputs, *TRACE_SHAPE, seed=0)
    args = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    dynamic = {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)}
               for s in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation/tracer notices; parity is verified after
        torch.onnx.export(module, args, str(path), input_names=[s.name for s in inputs],
                          output_names=[s.name for s in outputs], dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          custom_opsets={PLUGIN_DOMAIN: 1})
    if kernels == "fused":
        import onnx

        onnx.save(attach_plugin_functions(onnx.load(str(path))), str(path))
    return path


@torch.no_grad()
def torch_reference(model, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch fp32 outputs of a graph for the given feeds (the parity reference)."""
    module = graph_module(model, graph).float()
    names = MODALITIES if graph == MASKED else tuple(graph)
    args = [torch.from_numpy(feeds[MODALITY_NAMES[m]].astype(np.float32)) for m in names]
    args.append(torch.from_numpy(feeds["mask"]))
    if graph == MASKED:
        args.append(torch.from_numpy(feeds["avail"]))
    logits, weights = module(*args)
    return {"logits": logits.numpy(), "router_weights": weights.numpy()}


def versions() -> dict[str, str]:
    import onnx

    return {"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET}
