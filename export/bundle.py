"""Writing a bundle: export every graph, deduplicate weights, verify, then publish atomically.

The bundle is assembled in a temporary folder beside the target, fsynced, and swapped into place
only after every graph passed its parity check (runtime/atomic_fs.py): a failed or killed export
leaves the previous bundle complete, never a half bundle. Modes follow the umask.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from anymodal import __version__
from anymodal.runtime.atomic_fs import make_temp_dir, publish_dir
from anymodal.runtime.backends.ort import OrtCpuBackend
from anymodal.runtime.bundle import MANIFEST, SCHEMA_VERSION, Bundle, sha256_file
from anymodal.runtime.errors import ExportError
from anymodal.runtime.families.base import STREAMS_STEP_GRAPH
from anymodal.runtime.jsonio import write_json
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

from .capabilities import FusedRouter
from .dedup import deduplicate
from .function_names import check_function_names
from .graph_rewrites import rewrite_file
from .int8 import (
    DEFAULT_INT8_MODE,
    DEFAULT_MAX_DROP,
    INT8_MODES,
    calibration_root,
    int8_calibration,
    int8_report,
    quantize_graph,
)
from .ort_graphs import ORT_COPY_PRECISIONS, has_ort_ops, ort_file, ort_graphs_entry
from .specs import GRAPH_NAMES, OPSET, PRECISIONS, model_graph_specs
from .step_graphs import export_step_graphs, step_graph_specs, verify_step_graphs
from .streams_step_graphs import (
    export_streams_step_graphs,
    streams_step_graph_specs,
    verify_streams_step_graphs,
)
from .torch_export import export_graph, versions
from .verify import verify_graphs


def _variant_dir(precision: str) -> str:
    return "graphs" if precision == "fp32" else f"graphs/{precision}"


def _spec_json(specs):
    return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]


def _export_variant(model, root: Path, precision: str, kernels: str, int8_mode: str = DEFAULT_INT8_MODE,
                    calibration: dict | None = None) -> dict:
    """calibration: int8 static mode, {graph name: [feeds]} (the ORT copies take the same feeds)."""
    rel_dir = _variant_dir(precision)
    folder = root / rel_dir
    folder.mkdir(parents=True)
    dtype = "float16" if precision == "fp16" else "float32"
    with_ort = precision in ORT_COPY_PRECISIONS and has_ort_ops(model)  # + the ORT-optimised copies
    names = [f"{g}.onnx" for g in GRAPH_NAMES] + ([ort_file(g) for g in GRAPH_NAMES] if with_ort else [])
    fp32 = root / _variant_dir("fp32")
    if precision == "int8":  # int8 weights of the fp32 variant's graphs (inputs/outputs stay float32)
        paths = [quantize_graph(fp32 / n, folder / n, int8_mode, calibration and calibration[n.split(".")[0]])
                 for n in names]
    else:
        paths = [export_graph(model, g, folder / f"{g}.onnx", precision, kernels) for g in GRAPH_NAMES]
        if with_ort:  # the copies without the tracer's leftover shape plumbing (graph_rewrites.py)
            copies = [export_graph(model, g, folder / ort_file(g), precision, ort_ops=True) for g in GRAPH_NAMES]
            for path in copies:
                rewrite_file(path)
            paths += copies
    steps = export_step_graphs(model, folder, precision, fp32)  # causal models: streaming conversations
    batched = export_streams_step_graphs(model, folder, precision)  # many conversations' turns at once
    steps.update(batched)
    for path in paths + list(steps.values()):  # TensorRT's parser must see what ORT sees
        check_function_names(path)
    # portable graphs, ORT copies and step graphs share one weights file
    dedup = deduplicate(paths + list(steps.values()))
    graphs = {}
    for g in GRAPH_NAMES:
        inputs, outputs = model_graph_specs(model, g, dtype)
        graphs[g] = {"file": f"{rel_dir}/{g}.onnx", "data_files": [f"{rel_dir}/weights.bin"],
                     "inputs": _spec_json(inputs), "outputs": _spec_json(outputs)}
    variant = {"dir": rel_dir, "float_dtype": dtype, "graphs": graphs, "dedup": dedup}
    if with_ort:
        variant["ort_graphs"] = ort_graphs_entry(rel_dir, GRAPH_NAMES, paths[len(GRAPH_NAMES):])
    if steps:
        variant["step_graphs"] = {}
        for name, path in steps.items():
            if name in batched:
                inputs, outputs = streams_step_graph_specs(model, dtype)
            else:
                inputs, outputs = step_graph_specs(model, name.removeprefix("step_"), dtype)
            variant["step_graphs"][name] = {"file": f"{rel_dir}/{path.name}", "data_files": [f"{rel_dir}/weights.bin"],
                                            "inputs": _spec_json(inputs), "outputs": _spec_json(outputs)}
    return variant


def _file_table(root: Path) -> dict:
    return {str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _manifest(model, data: dict, default: str, variants: dict, kernels: str, root: Path) -> dict:
    dims = dict(zip(MODALITIES, model.cfg.input_dims))
    return {
        "schema_version": SCHEMA_VERSION,
        "anymodal_version": __version__,
        "model": {"kind": model.kind, "config": model.cfg.to_dict(), "task": model.cfg.task,
                  "labels": data.get("labels", []), "feature_dims": dims},
        # what it was trained on, so `rt-report accuracy` scores the same held-out split
        "data": {k: data.get(k) for k in ("dataset", "task", "features", "fold", "splits")},
        "inputs": {m: {"name": MODALITY_NAMES[m], "dim": dims[m]} for m in MODALITIES},
        "default_precision": default,
        "kernels": kernels,
        "variants": variants,
        "params": model.parameter_report(),
        "versions": versions(),
        "opset": OPSET,
        "files": _file_table(root),
    }


def write_bundle(model, run_config: dict, out: str | Path, precisions=("fp32",),
                 metrics: dict | None = None, kernels: str = "standard",
                 max_drop: float = DEFAULT_MAX_DROP, int8_mode: str = DEFAULT_INT8_MODE) -> Path:
    """Export `model` (eval mode) to a verified bundle folder `out`. kernels="fused" writes
    each router + expert mix as one TensorRT-plugin node (with its ONNX local function).
    int8_mode: how the int8 variant quantises activations (export/int8.py)."""
    out = Path(out)
    if kernels not in ("standard", "fused"):
        raise ExportError(f"unknown kernels mode {kernels!r}; choose standard or fused")
    for p in precisions:
        if p not in PRECISIONS:
            raise ExportError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    if "int8" in precisions and "fp32" not in precisions:
        raise ExportError("--precision int8 needs fp32 in the same bundle (its accuracy reference): use fp32,int8")
    if int8_mode not in INT8_MODES:
        raise ExportError(f"unknown int8 mode {int8_mode!r}; choose from {', '.join(INT8_MODES)}")
    if kernels == "fused" and not isinstance(model, FusedRouter):  # the family's RouterMix switch
        raise ExportError(f"--kernels fused: {model.kind} has no RouterMix-shaped routers (no fused_router switch)")
    model = model.eval()
    data = run_config.get("data", {})
    if "int8" in precisions and int8_mode == "static":
        calibration_root(data)  # unreachable data fails now, not after minutes of export
    if out.exists() and not (out / MANIFEST).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an anymodal bundle (no {MANIFEST}); refusing to "
                          "replace it — choose another --out")
    tmp = make_temp_dir(out)
    try:
        t0 = time.time()
        # int8 quantises the fp32 graphs, so it is built after them (static mode: calibrated
        # through a manifest of the variants built so far)
        built = {p: _export_variant(model, tmp, p, kernels) for p in precisions if p != "int8"}
        if "int8" in precisions:
            calibration = None
            if int8_mode == "static":
                write_json(_manifest(model, data, "fp32", built, kernels, tmp), tmp / MANIFEST)
                calibration = int8_calibration(Bundle(tmp, "fp32"), data)
            built["int8"] = _export_variant(model, tmp, "int8", kernels, int8_mode, calibration)
        variants = {p: built[p] for p in precisions}
        manifest = _manifest(model, data, precisions[0], variants, kernels, tmp)
        write_json(manifest, tmp / MANIFEST)
        parity = {}
        for p in precisions:  # verify through the runtime's own reader and ORT backend: the portable
            # graphs and, where the variant has them, the ORT-optimised copies (parity key "<p>-ort")
            flavours = {p: "portable", **({f"{p}-ort": "ort"} if "ort_graphs" in variants[p] else {})}
            backends = {label: OrtCpuBackend(Bundle(tmp, p), threads=None, graphs=g) for label, g in flavours.items()}
            parity.update(verify_graphs(model, backends, GRAPH_NAMES, p))
            if backends[p].bundle.step_graphs:
                parity[p].update(verify_step_graphs(model, backends[p], p))
                if STREAMS_STEP_GRAPH in backends[p].bundle.step_graphs:
                    parity[p].update(verify_streams_step_graphs(model, backends[p], p))
            for backend in backends.values():
                backend.close()
        manifest["parity"] = parity
        if "int8" in precisions:  # accuracy gate: raises (no bundle) past max_drop
            write_json(manifest, tmp / MANIFEST)
            manifest["variants"]["int8"].update(int8_report(model, tmp, data, max_drop, int8_mode))
        manifest["export_seconds"] = round(time.time() - t0, 1)
        if metrics:
            manifest["metrics"] = metrics
        if run_config.get("source_run"):
            manifest["source_run"] = run_config["source_run"]
        write_json(manifest, tmp / MANIFEST)
        publish_dir(tmp, out)
        return out
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
