"""The batched step graph (conversation turns, docs/ARCHITECTURE.md §7a): one graph that scores the new
utterances of S conversations at once, each with its own pattern, each against its own cached
keys/values.

    inputs   audio, text, visual [S, 1, dim] (zeros where absent), position int64 [S] (models
             with position embeddings), stream int64 [S] (each conversation's row in the pools),
             present bool [S, 3], then per modality past_<modality>_<i> [pool rows, *cache
             shape] (the cache pools of every conversation of the caller, fed in place; the graph
             gathers the rows and filled slots it needs) and cached_<modality> int64 [S]
    outputs  logits [S, 1, C], router_weights [S, 1, 3, 3], new_<modality> [S, n, *slot]
Row s equals the single-stream step graph of stream s's pattern (export/step_graphs.py) on
conversation s alone; an absent modality's weights and slots are ignored by the caller. Written
beside the step graphs as STREAMS_STEP_GRAPH, deduplicated with them, listed in the variant's
`step_graphs`; fp32 and fp16.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from anymodal.runtime.families import get_family
from anymodal.runtime.families.base import (
    CACHED,
    CONTEXT,
    NEW,
    PAST,
    POOL,
    STEP_POSITION,
    STEP_PRESENT,
    STEP_STREAM,
    STREAMS,
    STREAMS_STEP_GRAPH,
)
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

from .capabilities import StreamsStepGraph
from .step_graphs import STEP_PRECISIONS, has_step_graphs, step_error, step_graph_specs, trace_to_onnx

# (context slots, pool rows, rows in the batch, filled slots per batch row and modality a, t, v,
# pattern per batch row): rows out of order, fills distinct so that mixing streams up fails,
# patterns mixed; 0 = a first utterance
TRACE_STREAMS = (5, 3, (2, 0), ((3, 2, 4), (1, 0, 2)), ("atv", "t"))
VERIFY_STREAMS = ((1, 1, (0,), ((0, 0, 0),), ("atv",)),
                  (4, 3, (1, 2), ((1, 0, 3), (3, 2, 0)), ("a", "a")),
                  (9, 5, (4, 0, 3, 1), ((5, 8, 1), (0, 0, 0), (8, 3, 6), (2, 7, 4)), ("atv", "tv", "a", "at")),
                  (6, 7, (6, 2, 0, 5, 1, 3, 4), tuple((k % 5, (k + 2) % 6, k % 3) for k in range(7)),
                   ("a", "t", "v", "at", "av", "tv", "atv")))


def streams_step_graph_specs(model, float_dtype: str = "float32") -> tuple[list, list]:
    family = get_family(model.kind)
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    config = model.cfg.to_dict()
    return (family.streams_step_graph_inputs(dims, config, float_dtype),
            family.streams_step_graph_outputs(config, float_dtype))


def example_streams_feeds(specs, batch: tuple, seed: int) -> dict:
    """Random feeds of the batched step graph for `batch` = (context, pool rows, rows, fills,
    patterns); every pool slot random (unfilled slots and rows outside the batch must not
    matter), absent modalities' features zero, positions differing per row."""
    rng = np.random.default_rng(seed)
    context, pool, rows, fills, patterns = batch
    S = len(rows)
    fills = np.asarray(fills, np.int64)  # [S, 3]
    present = np.array([[m in p for m in MODALITIES] for p in patterns])  # [S, 3]
    feeds = {}
    for s in specs:
        if s.name.startswith(CACHED):
            feeds[s.name] = np.ascontiguousarray(fills[:, [MODALITY_NAMES[m] for m in MODALITIES].index(
                s.name.removeprefix(CACHED))])
        elif s.name == STEP_STREAM:
            feeds[s.name] = np.array(rows, np.int64)
        elif s.name == STEP_PRESENT:
            feeds[s.name] = present
        elif s.name == STEP_POSITION:
            feeds[s.name] = fills.max(axis=1) + np.arange(S, dtype=np.int64)
        else:
            sizes = {CONTEXT: context, POOL: pool, STREAMS: S}
            shape = tuple(sizes.get(d, d) for d in s.shape)
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
            if not s.name.startswith(PAST):  # features: zero where the modality is absent
                feeds[s.name] *= present[:, [MODALITY_NAMES[m] for m in MODALITIES].index(s.name)][:, None, None]
    return feeds


def export_streams_step_graph(model, path: Path, precision: str) -> Path:
    """Trace the batched step graph to ONNX (stream, pool and cache axes dynamic)."""
    dtype = "float16" if precision == "fp16" else "float32"
    module = model.streams_step_graph().eval()
    if precision == "fp16":
        module = copy.deepcopy(module).half()  # never touch the fp32 model (the parity reference)
    inputs, outputs = streams_step_graph_specs(model, dtype)
    feeds = example_streams_feeds(inputs, TRACE_STREAMS, seed=0)
    return trace_to_onnx(module, inputs, outputs, feeds, path, precision, dynamic=inputs + outputs)


def export_streams_step_graphs(model, folder: Path, precision: str) -> dict[str, Path]:
    """{STREAMS_STEP_GRAPH: file}; {} where step graphs are not made."""
    if precision not in STEP_PRECISIONS or not has_step_graphs(model) or not isinstance(model, StreamsStepGraph):
        return {}
    return {STREAMS_STEP_GRAPH: export_streams_step_graph(model, folder / f"{STREAMS_STEP_GRAPH}.onnx", precision)}


def torch_single_steps(model, feeds: dict[str, np.ndarray], patterns) -> list[dict[str, np.ndarray]]:
    """PyTorch fp32 outputs of the SINGLE-stream step of each batch row's pattern, on its own
    pool row: what each conversation gets alone (the batched graph's parity reference)."""
    import torch

    rows = feeds[STEP_STREAM]
    refs = []
    for s, (row, pattern) in enumerate(zip(rows, patterns)):
        single_in, single_out = step_graph_specs(model, pattern)
        args = []
        for spec in single_in:
            x = feeds[spec.name]
            # caches: this stream's pool row; features, position, counts: its batch row
            x = x[row] if spec.name.startswith(PAST) else x[s:s + 1]
            args.append(torch.from_numpy(np.ascontiguousarray(x.astype(np.float32) if x.dtype.kind == "f" else x)))
        with torch.no_grad():
            refs.append({o.name: t.numpy() for o, t in zip(single_out, model.step_graph(pattern).eval()(*args))})
    return refs


def batch_row(out: dict[str, np.ndarray], s: int, pattern: str) -> dict[str, np.ndarray]:
    """Row s of the batched graph's outputs as the single-stream step graph of `pattern` gives
    them: logits [1, 1, C], router_weights [1, 1, P, 3] (the pattern's modalities), new_<m> [n, …]."""
    cols = [MODALITIES.index(m) for m in pattern]
    row = {k: v[s:s + 1] for k, v in out.items() if not k.startswith(NEW)}
    row["router_weights"] = row["router_weights"][:, :, cols]
    row.update({f"{NEW}{MODALITY_NAMES[m]}": out[f"{NEW}{MODALITY_NAMES[m]}"][s] for m in pattern})
    return row


def verify_streams_step_graphs(model, backend, precision: str) -> dict:
    """The batched step graph on `backend` against PyTorch's single-stream steps, row by row, at
    VERIFY_STREAMS batches (different fills and patterns per row, rows out of order, a batch of
    one first turn); ExportError on the first failure."""
    dtype = "float16" if precision == "fp16" else "float32"
    graph, worst = STREAMS_STEP_GRAPH, 0.0
    for i, batch in enumerate(VERIFY_STREAMS):
        patterns = batch[4]
        feeds = example_streams_feeds(streams_step_graph_specs(model, dtype)[0], batch, seed=300 + i)
        got = backend.run(graph, feeds)
        for s, ref in enumerate(torch_single_steps(model, feeds, patterns)):
            row = batch_row(got, s, patterns[s])
            for name, r in ref.items():
                where = f"batched step graph {graph!r}, output {name!r}, row {s} of batch {batch}"
                worst = max(worst, step_error(row[name], r, precision, where))
    return {graph: {"max_error": worst, "batches": [[c, p, list(r), [list(f) for f in fs], list(pats)]
                                                    for c, p, r, fs, pats in VERIFY_STREAMS]}}
