"""Batched step graphs (issue 25, conversation turns): per pattern, one graph that scores the new
utterances of S conversations at once, each against its own cached keys/values.

    inputs   <modality> [S, 1, dim] per present modality, position int64 [S] (models with
             position embeddings), stream int64 [S] (each conversation's row in the pools), then
             per present modality past_<modality>_<i> [pool rows, *cache shape] (the cache pools
             of every conversation of the caller, fed in place; the graph gathers rows `stream`)
             and cached_<modality> int64 [S] (filled slots per conversation)
    outputs  logits [S, 1, C], router_weights [S, 1, P, 3], new_<modality> [S, n, *slot]
Row s equals the single-stream step graph (export/step_graphs.py) on conversation s alone: the
same ops per row. Written beside the step graphs, deduplicated with them, listed in the
variant's `step_graphs` under streams_step_graph_name (steps_<pattern>); fp32 and fp16.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
from anymodal.runtime.errors import ExportError
from anymodal.runtime.families import get_family, streams_step_graph_name
from anymodal.runtime.families.base import CACHED, CONTEXT, NEW, PAST, POOL, STEP_POSITION, STEP_STREAM, STREAMS
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .specs import OPSET, TOLERANCE
from .step_graphs import STEP_PRECISIONS, has_step_graphs

# (context slots, pool rows, rows in the batch, filled slots per batch row and modality a, t, v):
# rows out of order and fills distinct so that mixing streams up fails; 0 = a first utterance
TRACE_STREAMS = (5, 3, (2, 0), ((3, 2, 4), (1, 0, 2)))
VERIFY_STREAMS = ((1, 1, (0,), ((0, 0, 0),)),
                  (4, 3, (1, 2), ((1, 0, 3), (3, 2, 0))),
                  (9, 5, (4, 0, 3, 1), ((5, 8, 1), (0, 0, 0), (8, 3, 6), (2, 7, 4))))


def streams_step_graph_specs(model, pattern: str, float_dtype: str = "float32") -> tuple[list, list]:
    family = get_family(model.kind)
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    config = model.cfg.to_dict()
    return (family.streams_step_graph_inputs(pattern, dims, config, float_dtype),
            family.streams_step_graph_outputs(pattern, config, float_dtype))


def example_streams_feeds(specs, batch: tuple, seed: int) -> dict:
    """Random feeds of a batched step graph for `batch` = (context, pool rows, rows, fills); every
    pool slot random (unfilled slots and rows outside the batch must not matter); positions
    differ per row."""
    rng = np.random.default_rng(seed)
    context, pool, rows, fills = batch
    S = len(rows)
    fills = np.asarray(fills, np.int64)  # [S, 3]
    cached = {f"{CACHED}{n}": fills[:, k] for k, n in enumerate(("audio", "text", "visual"))}
    feeds = {}
    for s in specs:
        if s.name in cached:
            feeds[s.name] = np.ascontiguousarray(cached[s.name])
        elif s.name == STEP_STREAM:
            feeds[s.name] = np.array(rows, np.int64)
        elif s.name == STEP_POSITION:
            feeds[s.name] = fills.max(axis=1) + np.arange(S, dtype=np.int64)
        else:
            sizes = {CONTEXT: context, POOL: pool, STREAMS: S}
            shape = tuple(sizes.get(d, d) for d in s.shape)
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return feeds


def export_streams_step_graph(model, pattern: str, path: Path, precision: str) -> Path:
    """Trace one pattern's batched step graph to ONNX (stream, pool and cache axes dynamic)."""
    import torch

    from .ort_optimize import fold_constants

    dtype = "float16" if precision == "fp16" else "float32"
    module = model.streams_step_graph(pattern).eval()
    if precision == "fp16":
        module = copy.deepcopy(module).half()  # never touch the fp32 model (the parity reference)
    inputs, outputs = streams_step_graph_specs(model, pattern, dtype)
    feeds = example_streams_feeds(inputs, TRACE_STREAMS, seed=0)
    args = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    dynamic = {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in inputs}
    dynamic.update({s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in outputs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notices; parity is verified after
        torch.onnx.export(module, args, str(path), input_names=[s.name for s in inputs],
                          output_names=[s.name for s in outputs], dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    if precision == "fp32":
        fold_constants(path)
    return path


def export_streams_step_graphs(model, folder: Path, precision: str) -> dict[str, Path]:
    """{batched step graph name: file} for the 7 patterns; {} where step graphs are not made."""
    if precision not in STEP_PRECISIONS or not has_step_graphs(model) or not hasattr(model, "streams_step_graph"):
        return {}
    return {streams_step_graph_name(p): export_streams_step_graph(
                model, p, folder / f"{streams_step_graph_name(p)}.onnx", precision) for p in ALL_PATTERNS}


def torch_streams_reference(model, pattern: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch fp32 outputs of the SINGLE-stream step, row by row (each batch row on its own
    pool row): the batched graph must equal what each conversation gets alone."""
    import torch

    from .step_graphs import step_graph_specs

    single_in, single_out = step_graph_specs(model, pattern)
    module = model.step_graph(pattern).eval()
    rows = feeds[STEP_STREAM]
    per_row = []
    for s, row in enumerate(rows):
        args = []
        for spec in single_in:
            x = feeds[spec.name]
            # caches: this stream's pool row; features, position, counts: its batch row
            x = x[row] if spec.name.startswith(PAST) else x[s:s + 1]
            args.append(torch.from_numpy(np.ascontiguousarray(x.astype(np.float32) if x.dtype.kind == "f" else x)))
        with torch.no_grad():
            per_row.append([o.numpy() for o in module(*args)])
    # logits/weights [1, 1, ...] join on their batch axis; new slots [n, ...] gain one
    return {spec.name: (np.stack if spec.name.startswith(NEW) else np.concatenate)([r[k] for r in per_row])
            for k, spec in enumerate(single_out)}


def verify_streams_step_graphs(model, backend, precision: str) -> dict:
    """Every batched step graph on `backend` against PyTorch's single-stream step, row by row, at
    VERIFY_STREAMS batches (different fills per row, rows out of order, one batch of one);
    ExportError on the first failure."""
    dtype = "float16" if precision == "fp16" else "float32"
    results = {}
    for pattern in ALL_PATTERNS:
        graph = streams_step_graph_name(pattern)
        worst = 0.0
        for i, batch in enumerate(VERIFY_STREAMS):
            feeds = example_streams_feeds(streams_step_graph_specs(model, pattern, dtype)[0], batch, seed=300 + i)
            ref = torch_streams_reference(model, pattern, feeds)
            got = backend.run(graph, feeds)
            for name, r in ref.items():
                g = got[name].astype(np.float64)
                if g.shape != r.shape:
                    raise ExportError(f"batched step graph {graph!r} output {name!r} at {batch}: shape "
                                      f"{g.shape}, PyTorch {r.shape}")
                err = float(np.max(np.abs(g - r)))
                if precision != "fp32":  # relative to the output's scale, as verify.compare
                    err /= max(float(np.max(np.abs(r))), 1.0)
                if not np.isfinite(err) or err > TOLERANCE[precision]:
                    raise ExportError(f"parity failed: batched step graph {graph!r}, output {name!r}, batch "
                                      f"{batch}: error {err:.3g} > {TOLERANCE[precision]:g}")
                worst = max(worst, err)
        results[graph] = {"max_error": worst, "batches": [[c, p, list(r), [list(f) for f in fs]]
                                                          for c, p, r, fs in VERIFY_STREAMS]}
    return results
