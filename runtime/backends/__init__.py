"""Backend registry and selection. `auto` tries the fastest first and says what it chose."""

from __future__ import annotations

from ..errors import BackendUnavailableError, InputError
from .base import Backend
from .ort import OrtCpuBackend, OrtCudaBackend, OrtTensorRTBackend
from .tensorrt import TensorRTBackend

BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (TensorRTBackend, OrtTensorRTBackend, OrtCudaBackend, OrtCpuBackend)}
# Preference of `auto`: native TensorRT engines, then ORT on CUDA, then ORT on the CPU.
# ort-trt is only used when asked for by name (ORT builds its own engines on first use).
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "ort-cuda", "ort-cpu")


def select_backend(name: str, registry: dict[str, type[Backend]] | None = None):
    """Return (backend class, notes). Named: it must work, or BackendUnavailableError with the
    install hint. `auto`: the first available in AUTO_ORDER; notes say why others were skipped."""
    registry = BACKENDS if registry is None else registry
    if name != "auto":
        if name not in registry:
            raise InputError(f"unknown backend {name!r}; choose auto or {', '.join(registry)}")
        ok, why = registry[name].available()
        if not ok:
            raise BackendUnavailableError(f"backend {name!r} cannot run here: {why}")
        return registry[name], []
    notes = []
    for candidate in AUTO_ORDER:
        if candidate not in registry:
            notes.append(f"{candidate}: not available in this build")
            continue
        ok, why = registry[candidate].available()
        if ok:
            return registry[candidate], notes
        notes.append(f"{candidate}: {why}")
    raise BackendUnavailableError("no backend can run here: " + "; ".join(notes))
