"""Step graphs of a causal model (streaming conversations, docs/ARCHITECTURE.md §7a): per
pattern, one graph that scores one new utterance against the cached keys/values of each present
modality stream.

    inputs   <modality> [1, 1, dim] per present modality, position int64 [1] (models with
             position embeddings), then per present modality past_<modality>_<i> (its n caches,
             MoMKE: K and V of each block, [3 experts, heads, context, d/heads]) and
             cached_<modality> int64 [1] (filled slots; 0 on the stream's first utterance)
    outputs  logits [1, 1, C], router_weights [1, 1, P, 3], new_<modality> [n, *slot]
(the family's cache_layout). The caches live in the runtime's Conversation, preallocated at
max_context slots: a turn's feeds are the same buffers every time, never copied. Written beside the full graphs and deduplicated
with them (the step graphs hold the same weights), listed in the variant's `step_graphs`.
Traced for fp32 and fp16; int8 step graphs are the fp32 ones quantised like the int8 full
graphs (export/int8.py: int8 MatMul weights, per-request activation scales; the caches, inputs
and outputs stay float32), verified against PyTorch at int8's tolerance.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import ExportError
from anymodal.runtime.families import get_family, step_graph_name
from anymodal.runtime.families.base import CACHED, CONTEXT
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .capabilities import StepGraphs
from .specs import OPSET, TOLERANCE

STEP_PRECISIONS = ("fp32", "fp16")  # traced
QUANTISED_STEP_PRECISIONS = ("int8",)  # quantised from the fp32 step graphs
# (context slots, filled slots per stream a, t, v) traced with and verified at: fills distinct so
# that mixing the streams up fails; 0 = the stream's first utterance
TRACE_PAST = (5, (3, 2, 4))
VERIFY_PAST = ((1, (0, 0, 0)), (4, (1, 0, 3)), (9, (5, 8, 1)))


def has_step_graphs(model) -> bool:
    """Causal models of a family that declares a cache layout, with a step module to export."""
    family = get_family(model.kind)
    return family.cache_layout(model.cfg.to_dict()) is not None and isinstance(model, StepGraphs)


def step_graph_specs(model, pattern: str, float_dtype: str = "float32") -> tuple[list, list]:
    family = get_family(model.kind)
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    config = model.cfg.to_dict()
    return (family.step_graph_inputs(pattern, dims, config, float_dtype),
            family.step_graph_outputs(pattern, config, float_dtype))


def example_step_feeds(specs, past: tuple[int, tuple], seed: int, position: int = 0) -> dict:
    """Random feeds of a step graph: features, the position, caches of `past` = (context slots,
    filled slots per stream a, t, v), unfilled slots random too (they must not matter)."""
    rng = np.random.default_rng(seed)
    context, filled = past
    filled = {f"{CACHED}{n}": k for n, k in zip(("audio", "text", "visual"), filled)}
    feeds = {}
    for s in specs:
        if s.name in filled:
            feeds[s.name] = np.array([filled[s.name]], np.int64)
        elif s.dtype == "int64":
            feeds[s.name] = np.array([position], np.int64)
        else:
            shape = tuple(context if d == CONTEXT else d for d in s.shape)
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return feeds


def export_step_graph(model, pattern: str, path: Path, precision: str) -> Path:
    """Trace one pattern's step graph to ONNX (the cache axes dynamic)."""
    dtype = "float16" if precision == "fp16" else "float32"
    module = model.step_graph(pattern).eval()
    if precision == "fp16":
        module = copy.deepcopy(module).half()  # never touch the fp32 model (the parity reference)
    inputs, outputs = step_graph_specs(model, pattern, dtype)
    feeds = example_step_feeds(inputs, TRACE_PAST, seed=0, position=TRACE_PAST[1][0])
    return trace_to_onnx(module, inputs, outputs, feeds, path, precision, dynamic=inputs)


def trace_to_onnx(module, inputs, outputs, feeds: dict, path: Path, precision: str, dynamic) -> Path:
    """Trace `module` on `feeds` (one array per input spec) into `path`; the specs in `dynamic`
    keep their named axes dynamic; fp32 graphs are constant-folded."""
    import torch

    from .ort_optimize import fold_constants

    args = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    axes = {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in dynamic}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notices; parity is verified after
        torch.onnx.export(module, args, str(path), input_names=[s.name for s in inputs],
                          output_names=[s.name for s in outputs], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    if precision == "fp32":
        fold_constants(path)
    return path


def export_step_graphs(model, folder: Path, precision: str, fp32_folder: Path | None = None) -> dict[str, Path]:
    """{step graph name: file} for the 7 patterns; {} when the model has none. int8 quantises
    the fp32 variant's step graphs, already written in `fp32_folder`, always dynamically (static
    --int8-mode calibrates the whole-request graphs only: no turn-by-turn calibration feeds)."""
    if not has_step_graphs(model):
        return {}
    names = [step_graph_name(p) for p in ALL_PATTERNS]
    if precision in QUANTISED_STEP_PRECISIONS:
        from .int8 import quantize_graph

        if fp32_folder is None or not all((fp32_folder / f"{n}.onnx").is_file() for n in names):
            raise ExportError(f"{precision} step graphs quantise the fp32 ones: export fp32 first")
        return {n: quantize_graph(fp32_folder / f"{n}.onnx", folder / f"{n}.onnx") for n in names}
    if precision not in STEP_PRECISIONS:
        return {}
    return {n: export_step_graph(model, p, folder / f"{n}.onnx", precision) for n, p in zip(names, ALL_PATTERNS)}


def torch_step_reference(model, pattern: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch fp32 outputs of a step graph for the given feeds (the parity reference)."""
    import torch

    inputs, outputs = step_graph_specs(model, pattern)
    args = [torch.from_numpy(feeds[s.name].astype(np.float32) if s.dtype.startswith("float") else feeds[s.name])
            for s in inputs]
    with torch.no_grad():
        outs = model.step_graph(pattern).eval()(*args)
    return {s.name: o.numpy() for s, o in zip(outputs, outs)}


def step_error(got: np.ndarray, ref: np.ndarray, precision: str, where: str) -> float:
    """The error of one step-graph output against PyTorch (relative to the output's scale below
    fp32, as verify.compare); ExportError naming `where` on a shape or tolerance miss."""
    g = got.astype(np.float64)
    if g.shape != ref.shape:
        raise ExportError(f"parity failed: {where}: shape {g.shape}, PyTorch {ref.shape}")
    err = float(np.max(np.abs(g - ref)))
    if precision != "fp32":
        err /= max(float(np.max(np.abs(ref))), 1.0)
    if not np.isfinite(err) or err > TOLERANCE[precision]:
        raise ExportError(f"parity failed: {where}: error {err:.3g} > {TOLERANCE[precision]:g}")
    return err


def verify_step_graphs(model, backend, precision: str) -> dict:
    """Every step graph on `backend` against PyTorch at VERIFY_PAST cache sizes and fills (the
    first turn's empty caches included); ExportError on the first failure."""
    dtype = "float16" if precision == "fp16" else "float32"
    results = {}
    for pattern in ALL_PATTERNS:
        graph = step_graph_name(pattern)
        worst = 0.0
        for i, past in enumerate(VERIFY_PAST):
            feeds = example_step_feeds(step_graph_specs(model, pattern, dtype)[0], past, seed=200 + i,
                                       position=max(past[1]) + i)
            ref = torch_step_reference(model, pattern, feeds)
            got = backend.run(graph, feeds)
            for name, r in ref.items():
                where = f"step graph {graph!r}, output {name!r}, caches {past}"
                worst = max(worst, step_error(got[name], r, precision, where))
        results[graph] = {"max_error": worst, "caches": [[c, list(f)] for c, f in VERIFY_PAST]}
    return results

