"""TensorRT engines for a bundle, built on the target GPU (docs/ARCHITECTURE.md §6): one engine per graph,
optimisation profiles from the bundle's input specs, a timing cache, cached under
`engines/<sm>-<device>-trt<version>-<precision>/`. The folder is built under a temporary name
and renamed when complete, with an engines.json (sha256 per plan, device, profile bounds) the
runtime checks, so an interrupted build is never selected. TensorRT and pycuda are imported
lazily and tested on CPU with fakes (tests/support/anymodal_testing/fakes)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from anymodal.runtime.backends.trt_keys import (  # noqa: F401  (re-exported)
    ENGINE_PRECISIONS,
    ENGINES_INDEX,
    cuda_device_index,
    device_slug,
    engine_key,
    tensorrt_version_problem,
)
from anymodal.runtime.bundle import Bundle, sha256_file
from anymodal.runtime.errors import BackendUnavailableError, CalibrationDataError, ExportError

from .build_deps import require_build_libs


@dataclass(frozen=True)
class ProfileLimits:
    max_batch: int = 16  # requests batched per call on an edge device
    max_seq: int = 256  # utterances per conversation (IEMOCAP's longest dialogue is ~110)
    opt_batch: int = 1
    opt_seq: int = 24


def profile_shapes(bundle: Bundle, graph: str, limits: ProfileLimits = ProfileLimits()) -> dict:
    """{input name: (min, opt, max) shape} from the bundle's symbolic input specs; the length
    axes come from the family's input kind (a conversation axis, or per-modality token axes
    optimised for and capped at the model's dataset lengths)."""
    axis = {"batch": (1, limits.opt_batch, limits.max_batch),
            **bundle.family.inputs.profile_axes(bundle.model["config"], limits.opt_seq, limits.max_seq)}
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
    problem = tensorrt_version_problem(trt.__version__)
    if problem:
        raise BackendUnavailableError(problem)
    return trt


def _device(index: int):
    """(pycuda driver, Device, compute capability, name) without creating a context: pycuda's
    autoinit would leave a private context current for the rest of the process."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError("pycuda is needed to build engines: pip install 'anymodal[trt]'") from exc
    cuda.init()
    if index >= cuda.Device.count():
        raise BackendUnavailableError(f"no CUDA device {index} ({cuda.Device.count()} present)")
    dev = cuda.Device(index)
    return cuda, dev, tuple(dev.compute_capability()), dev.name()


def _router_width(bundle: Bundle) -> int | None:
    return bundle.model.get("config", {}).get("hidden")


def _plugin_layers(trt, network) -> int:
    """How many plugin layers the parsed network has (QDPs are IPluginV3 layers)."""
    kinds = {getattr(trt.LayerType, k) for k in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, k)}
    return sum(network.get_layer(i).type in kinds for i in range(network.num_layers))


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished build into place; an older folder of the same key is replaced."""
    old = out.with_name(f".old-{out.name}-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def build_engines(bundle_dir: str | Path, precision: str = "fp16", workspace_mb: int = 1024,
                  calib_data: Path | None = None, limits: ProfileLimits = ProfileLimits(),
                  progress=print, device: int | None = None) -> Path:
    """Build every graph of the bundle into engines/<key>/<graph>.plan plus engines.json."""
    trt = _trt()
    if precision not in ENGINE_PRECISIONS:
        raise ExportError(f"unknown engine precision {precision!r}; choose {', '.join(ENGINE_PRECISIONS)}")
    require_build_libs(precision)  # before any engine is built
    device = cuda_device_index() if device is None else device
    cuda, dev, cc, device_name = _device(device)
    bundle = Bundle(bundle_dir)
    key = engine_key(cc, trt.__version__, precision, device_name)
    engines = bundle.path / "engines"
    out = engines / key
    tmp = engines / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ctx = dev.retain_primary_context()  # TensorRT uses the current context: this device's primary one
    ctx.push()
    try:
        _build_all(trt, bundle, precision, workspace_mb, calib_data, limits, progress, tmp, out,
                   {"key": key, "device": device_name, "compute_capability": list(cc),
                    "tensorrt": trt.__version__, "precision": precision})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cuda.Context.pop()
    _replace_dir(tmp, out)
    return out


def _build_all(trt, bundle: Bundle, precision, workspace_mb, calib_data, limits, progress, tmp: Path,
               out: Path, index: dict) -> None:
    from anymodal.kernels.trt_plugin import register_router_mix_plugin

    cc = index["compute_capability"]
    registered, plugin_note = register_router_mix_plugin(cc[0] * 10 + cc[1], _router_width(bundle))
    logger = trt.Logger(trt.Logger.WARNING)
    cache_path = tmp / "timing.cache"
    if (out / "timing.cache").is_file():  # start from the previous build's timings
        shutil.copyfile(out / "timing.cache", cache_path)
    # "plugin": whether any engine has a RouterMix plugin layer (the parser inlines the local
    # function when the plugin is not registered); "plugin_graphs": which ones
    index.update({"plugin": False, "plugin_registered": registered, "plugin_note": plugin_note,
                  "plugin_graphs": [], "limits": limits.__dict__, "profiles": {}, "engines": {}})
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11  # TensorRT 11 drops weak typing
    if strongly_typed and precision == "fp16":
        # types come from the graph itself: build from the bundle's fp16 variant
        if "fp16" not in bundle.manifest["variants"]:
            raise ExportError(f"TensorRT {trt.__version__} builds strongly typed networks: export the "
                              "bundle with --precision fp32,fp16 to build fp16 engines")
        bundle = Bundle(bundle.path, "fp16")
    index["graph_precision"] = bundle.precision
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    cal = _calibration_set(bundle, precision, calib_data, progress)
    if precision == "int8":
        index["calibration"] = cal.record()
    sources, shapes_by_graph = {}, {}
    for graph in bundle.graphs:
        path = bundle.graph_path(graph)
        if precision == "int8":
            from .calibration import graph_feeds
            from .quantize import quantize_graph_qdq

            path = quantize_graph_qdq(path, tmp / "qdq" / f"{graph}.onnx",
                                      graph_feeds(bundle, graph, cal, limits.max_seq))
        sources[graph] = path
        builder = trt.Builder(logger)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT could not parse graph {graph!r}: {errors}")
        if _plugin_layers(trt, network):
            index["plugin"] = True
            index["plugin_graphs"].append(graph)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if precision == "fp16" and not strongly_typed:
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8" and not strongly_typed:
            config.set_flag(trt.BuilderFlag.INT8)  # scales come from the QDQ nodes
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        shapes = shapes_by_graph[graph] = profile_shapes(bundle, graph, limits)
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        progress(f"building {graph} ({index['key']}) …")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ExportError(f"TensorRT failed to build graph {graph!r} ({index['key']})")
        (tmp / f"{graph}.plan").write_bytes(bytes(plan))
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        index["profiles"][graph] = {n: [list(lo), list(hi)] for n, (lo, _, hi) in shapes.items()}
        index["engines"][graph] = {"file": f"{graph}.plan", "sha256": sha256_file(tmp / f"{graph}.plan")}
    (tmp / ENGINES_INDEX).write_text(json.dumps(index, indent=2))  # the backend reads it for the check
    from .engine_parity import check_parity

    index["parity"] = check_parity(bundle, tmp, sources, precision, cal, shapes_by_graph, limits.max_seq, progress)
    shutil.rmtree(tmp / "qdq", ignore_errors=True)
    (tmp / ENGINES_INDEX).write_text(json.dumps(index, indent=2))  # with the parity: the build is complete


def _calibration_set(bundle: Bundle, precision: str, calib_data, progress):
    """INT8: the recorded training split or --calib-data, else CalibrationDataError (never random
    data). fp32/fp16: the same data for the parity check where reachable, else None (random
    features, said in engines.json)."""
    from .calibration import training_set

    if precision == "int8":
        return training_set(bundle, calib_data)
    try:
        return training_set(bundle, calib_data)
    except CalibrationDataError as exc:
        if calib_data is not None:  # asked for: its problem is an error, not a fallback
            raise
        progress(f"parity on random features: {exc}")
        return None
