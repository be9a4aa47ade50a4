"""Parity of exported graphs against PyTorch, through the runtime's own ORT backend."""

from __future__ import annotations

import numpy as np

from anymodal.runtime.errors import ExportError

from .specs import TOLERANCE, VERIFY_SHAPES, model_graph_specs
from .torch_export import example_feeds, torch_reference


def compare(graph: str, output: str, got: np.ndarray, ref: np.ndarray, mask: np.ndarray,
            precision: str, shape, label: str = "") -> float:
    """Error over real utterances (padding rows are unspecified) against the tolerance."""
    g, r = got.astype(np.float64)[mask], ref.astype(np.float64)[mask]
    if g.shape != r.shape:
        raise ExportError(f"graph {graph!r} output {output!r} at batch/seq {shape}: "
                          f"shape {got.shape}, PyTorch {ref.shape}")
    err = float(np.max(np.abs(g - r))) if g.size else 0.0
    if precision in ("fp16", "int8"):  # relative to the output's scale, at least 1: a score near 0
        err /= max(float(np.max(np.abs(r))), 1.0)  # must not inflate its error (logits/weights are O(1))
    if not np.isfinite(err) or err > TOLERANCE[precision]:
        kind = "relative" if precision in ("fp16", "int8") else "max-abs"
        copy = " (ORT-optimised copy)" if label.endswith("-ort") else ""
        raise ExportError(f"parity failed: graph {graph!r}{copy}, output {output!r}, batch/seq {shape}: "
                          f"{kind} error {err:.3g} > {TOLERANCE[precision]:g}")
    return err


def verify_graphs(model, backends: dict, graphs, precision: str) -> dict:
    """Run every graph at VERIFY_SHAPES on each of `backends` ({label: backend}, e.g. the portable
    graphs and the ORT-optimised copies: one PyTorch reference serves all); raise ExportError on
    the first failure. Returns {label: {graph: {"max_error": e, "shapes": [...]}}}."""
    dtype = "float16" if precision == "fp16" else "float32"
    results = {label: {} for label in backends}
    for graph in graphs:
        worst = dict.fromkeys(backends, 0.0)
        for i, (batch, seq) in enumerate(VERIFY_SHAPES):
            feeds = example_feeds(model_graph_specs(model, graph, dtype)[0], batch, seq, seed=100 + i)
            ref = torch_reference(model, graph, feeds)
            rows = feeds.get("mask", np.ones(batch, bool))  # sequence models: one output per sample
            for label, backend in backends.items():
                got = backend.run(graph, feeds)
                for name in ("logits", "router_weights"):
                    err = compare(graph, name, got[name], ref[name], rows, precision, (batch, seq), label)
                    worst[label] = max(worst[label], err)
        for label in backends:
            results[label][graph] = {"max_error": worst[label], "shapes": [list(s) for s in VERIFY_SHAPES]}
    return results
