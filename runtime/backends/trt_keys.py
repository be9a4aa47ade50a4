"""Names shared by rt-build and the TensorRT backend: which CUDA device, and the engine folder
key (compute capability, device model, TensorRT version, precision). Plain Python."""

from __future__ import annotations

import os
import re

from ..errors import ExportError

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
ENGINES_INDEX = "engines.json"
DEVICE_ENV = "ANYMODAL_CUDA_DEVICE"  # which CUDA device (ordinal) to build for and run on


def cuda_device_index() -> int:
    """The CUDA device anymodal uses: $ANYMODAL_CUDA_DEVICE, default 0."""
    raw = os.environ.get(DEVICE_ENV, "0")
    try:
        return int(raw)
    except ValueError:
        raise ExportError(f"{DEVICE_ENV}={raw!r} is not a device ordinal") from None


def device_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (engines are tuned per device model)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def engine_key(compute_capability: tuple[int, int], trt_version: str, precision: str,
               device_name: str | None = None) -> str:
    """'sm87-trt10.3.0-fp16', or with the device 'sm90-nvidia-h100-80gb-hbm3-trt10.13.3-fp16':
    engines are valid only for this GPU (model), TensorRT and precision."""
    if precision not in ENGINE_PRECISIONS:
        raise ExportError(f"unknown engine precision {precision!r}; choose {', '.join(ENGINE_PRECISIONS)}")
    major, minor = compute_capability
    device = f"-{device_slug(device_name)}" if device_name else ""
    return f"sm{major}{minor}{device}-trt{trt_version}-{precision}"




MIN_TENSORRT = (10, 0)  # the tensor-name API and explicit-batch networks by default


def tensorrt_version_problem(version: str) -> str | None:
    """Why this TensorRT cannot run anymodal's build/backend code, or None. TensorRT 8.6
    (JetPack 6.0) makes an implicit-batch network from create_network(0), which the ONNX parser
    refuses; anymodal is written for TensorRT 10 and 11 (docs/gpu.md)."""
    try:
        major_minor = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return f"TensorRT version {version!r} is not a version number"
    if major_minor < MIN_TENSORRT:
        return (f"TensorRT {version} is older than {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]}: anymodal builds and runs "
                "engines with TensorRT 10/11 only (on a Jetson: JetPack >= 6.1, which ships TensorRT 10.3)")
    return None
