"""TensorRT engines for a bundle, built on the target GPU (DESIGN §6): one engine per graph,
optimisation profiles from the bundle's input specs, a timing cache, cached under
`engines/<sm>-trt<version>-<precision>/`. TensorRT and pycuda are imported lazily; the
key, profile and INT8-calibration logic is plain Python and tested on CPU."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from anymodal.runtime.bundle import Bundle, sha256_file
from anymodal.runtime.errors import BackendUnavailableError, ExportError
from anymodal.runtime.patterns import MODALITY_NAMES

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")


def engine_key(compute_capability: tuple[int, int], trt_version: str, precision: str) -> str:
    """'sm87-trt10.3.0-fp16': engines are valid only for this GPU arch, TensorRT and precision."""
    if precision not in ENGINE_PRECISIONS:
        raise ExportError(f"unknown engine precision {precision!r}; choose {', '.join(ENGINE_PRECISIONS)}")
    major, minor = compute_capability
    return f"sm{major}{minor}-trt{trt_version}-{precision}"


@dataclass(frozen=True)
class ProfileLimits:
    max_batch: int = 16  # requests batched per call on an edge device
    max_seq: int = 256  # utterances per conversation (IEMOCAP's longest dialogue is ~110)
    opt_batch: int = 1
    opt_seq: int = 24


def profile_shapes(bundle: Bundle, graph: str, limits: ProfileLimits = ProfileLimits()) -> dict:
    """{input name: (min, opt, max) shape} from the bundle's symbolic input specs. DERL's
    per-modality token axes (seq_audio/seq_text/seq_visual) are optimised for, and capped at,
    the model's dataset length of that modality (its `absent_lengths`)."""
    axis = {"batch": (1, limits.opt_batch, limits.max_batch), "seq": (1, limits.opt_seq, limits.max_seq)}
    if bundle.sequence_model:
        for m, length in bundle.absent_lengths.items():
            axis[f"seq_{MODALITY_NAMES[m]}"] = (1, length, length)
    shapes = {}
    for spec in bundle.graphs[graph]["inputs"]:
        dims = [axis[d] if isinstance(d, str) else (d, d, d) for d in spec["shape"]]
        shapes[spec["name"]] = tuple(tuple(d[i] for d in dims) for i in range(3))
    return shapes


def _trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError("TensorRT is not installed: on Jetson it ships with JetPack; "
                                      "elsewhere pip install tensorrt (NVIDIA's index)") from exc
    return trt


def _compute_capability() -> tuple[int, int]:
    try:
        import pycuda.autoinit  # noqa: F401
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError("pycuda is needed to build engines: pip install 'anymodal[trt]'") from exc
    return cuda.Device(0).compute_capability()


def build_engines(bundle_dir: str | Path, precision: str = "fp16", workspace_mb: int = 1024,
                  calib_data: Path | None = None, limits: ProfileLimits = ProfileLimits(),
                  progress=print) -> Path:
    """Build every graph of the bundle into engines/<key>/<graph>.plan and an index."""
    trt = _trt()
    cc = _compute_capability()
    bundle = Bundle(bundle_dir)
    key = engine_key(cc, trt.__version__, precision)
    out = bundle.path / "engines" / key
    out.mkdir(parents=True, exist_ok=True)
    from anymodal.kernels.trt_plugin import register_router_mix_plugin

    plugin = register_router_mix_plugin(cc[0] * 10 + cc[1])
    logger = trt.Logger(trt.Logger.WARNING)
    cache_path = out / "timing.cache"
    index = {"key": key, "plugin": plugin, "engines": {}}
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11  # TensorRT 11 drops weak typing
    if strongly_typed and precision == "fp16":
        # types come from the graph itself: build from the bundle's fp16 variant
        if "fp16" not in bundle.manifest["variants"]:
            raise ExportError(f"TensorRT {trt.__version__} builds strongly typed networks: export the "
                              "bundle with --precision fp32,fp16 to build fp16 engines")
        bundle = Bundle(bundle.path, "fp16")
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    for graph in bundle.graphs:
        path = bundle.graph_path(graph)
        if precision == "int8":
            from .quantize import calibration_feeds, quantize_graph_qdq

            path = quantize_graph_qdq(path, out / "qdq" / f"{graph}.onnx",
                                      calibration_feeds(bundle, graph, calib_data))
        builder = trt.Builder(logger)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT could not parse graph {graph!r}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if precision == "fp16" and not strongly_typed:
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8" and not strongly_typed:
            config.set_flag(trt.BuilderFlag.INT8)  # scales come from the QDQ nodes
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile_shapes(bundle, graph, limits).items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        progress(f"building {graph} ({key}) …")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ExportError(f"TensorRT failed to build graph {graph!r} ({key})")
        (out / f"{graph}.plan").write_bytes(bytes(plan))
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        index["engines"][graph] = {"file": f"{graph}.plan", "sha256": sha256_file(out / f"{graph}.plan")}
    (out / "engines.json").write_text(json.dumps(index, indent=2))
    return out
