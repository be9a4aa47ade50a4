"""rt-doctor: what this machine has for anymodal — library and driver versions, CUDA devices,
and for each backend and GPU tool whether it is usable here and, if not, why. Imports nothing
it does not find; never fails on a CPU-only machine."""

from __future__ import annotations

import ctypes
import importlib
import platform
import shutil
import subprocess
from pathlib import Path

LIBRARIES = ("numpy", "onnxruntime", "torch", "triton", "tensorrt", "pycuda", "onnx", "cupy")


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # not installed, or broken (a broken install is reported as missing)
        return None
    return str(getattr(mod, "__version__", "unknown"))


def driver_info() -> dict:
    """NVIDIA driver version and the CUDA version it supports (no context is created)."""
    info = {"driver": None, "cuda_driver_api": None}
    proc = Path("/proc/driver/nvidia/version")
    if proc.is_file():
        words = proc.read_text().split()
        info["driver"] = next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), None)
    elif shutil.which("nvidia-smi"):
        res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["driver"] = res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int()
        if lib.cuDriverGetVersion(ctypes.byref(v)) == 0:
            info["cuda_driver_api"] = f"{v.value // 1000}.{v.value % 1000 // 10}"
    except OSError:
        pass
    return info


def _torch_devices() -> list[dict]:
    """Devices as torch sees them (what the Triton kernels can use), else []."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "compute_capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1), "seen_by": "torch"})
    return out


def _pycuda_devices() -> list[dict]:
    """Devices through the CUDA driver (pycuda), for torch-free installs such as a Jetson serving
    with TensorRT; no context is created (name, capability and memory are device attributes)."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        return []
    try:
        cuda.init()
        devices = [cuda.Device(i) for i in range(cuda.Device.count())]
        return [{"index": i, "name": d.name(), "compute_capability": "{}.{}".format(*d.compute_capability()),
                 "memory_gib": round(d.total_memory() / 2**30, 1), "seen_by": "pycuda"}
                for i, d in enumerate(devices)]
    except Exception:  # pycuda raises its own error types (no driver, no device): none usable
        return []


def cuda_devices() -> list[dict]:
    """CUDA devices (name, compute capability, memory) as torch sees them, else through pycuda
    (the TensorRT backend's driver binding), else []."""
    return _torch_devices() or _pycuda_devices()


def _triton_kernels() -> tuple[bool, str]:
    if _version("triton") is None:
        return False, "triton is not installed (pip install 'anymodal[kernels]')"
    if not _torch_devices():
        return False, "no CUDA device visible to torch (the kernels then run only under TRITON_INTERPRET=1)"
    return True, ""


def _rt_build() -> tuple[bool, str]:
    from anymodal.runtime.backends.tensorrt import TensorRTBackend

    return TensorRTBackend.available()


def _plugin() -> tuple[bool, str]:
    if _version("tensorrt") is None:
        return False, "tensorrt is not installed"
    from anymodal.kernels.trt_plugin import qdp_aot_available

    return qdp_aot_available()


def report() -> dict:
    from anymodal import __version__
    from anymodal.runtime.backends import AUTO_ORDER, BACKENDS

    ort = {}
    try:
        import onnxruntime

        ort = {"version": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
    except ImportError:
        pass
    backends = {}
    for name, cls in BACKENDS.items():
        try:
            ok, why = cls.available()
        except Exception as exc:  # a probe must not crash the doctor; report it
            ok, why = False, f"check failed: {type(exc).__name__}: {exc}"
        backends[name] = {"usable": ok, "reason": why, "needs": cls.install_hint, "auto": name in AUTO_ORDER}
    tools = {}
    for name, fn, needs in (("triton-kernels", _triton_kernels, "triton and a CUDA GPU"),
                            ("rt-build", _rt_build, "TensorRT, pycuda and a CUDA GPU"),
                            ("routermix-plugin", _plugin, "TensorRT >= 10.9 (AOT Quickly Deployable Plugins)")):
        try:
            ok, why = fn()
        except Exception as exc:  # as above
            ok, why = False, f"check failed: {type(exc).__name__}: {exc}"
        tools[name] = {"usable": ok, "reason": why, "needs": needs}
    return {"anymodal": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "libraries": {m: _version(m) for m in LIBRARIES}, "onnxruntime": ort,
            **driver_info(), "devices": cuda_devices(), "backends": backends, "tools": tools}


def format_report(r: dict) -> str:
    lines = [f"anymodal {r['anymodal']} · Python {r['python']} · {r['machine']}",
             f"NVIDIA driver: {r['driver'] or 'none'} · CUDA (driver API): {r['cuda_driver_api'] or 'none'}"]
    for d in r["devices"] or [{"index": "-", "name": "no CUDA device", "compute_capability": "-", "memory_gib": "-"}]:
        lines.append(f"device {d['index']}: {d['name']} (sm {d['compute_capability']}, {d['memory_gib']} GiB)")
    lines.append("libraries: " + ", ".join(f"{k} {v or '—'}" for k, v in r["libraries"].items()))
    if r["onnxruntime"]:
        lines.append("onnxruntime providers: " + ", ".join(r["onnxruntime"]["providers"]))
    lines.append("")
    width = max(len(n) for n in [*r["backends"], *r["tools"]])
    for title, group in (("backends", r["backends"]), ("GPU tools", r["tools"])):
        lines.append(f"{title}:")
        for name, b in group.items():
            state = "usable" if b["usable"] else "not usable"
            lines.append(f"  {name:<{width}}  {state:<10}  " + (b["reason"] if not b["usable"] else f"needs {b['needs']}"))
    return "\n".join(lines)
