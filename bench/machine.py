"""What the figures were measured on: machine, library versions, timestamp, peak RSS, and
this machine's large-matmul rate (the yardstick for 'fraction of peak')."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
import time
from importlib import metadata

import numpy as np

from .device_facts import device_facts


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {p: _version(p) for p in ("anymodal", "numpy", "onnxruntime", "onnxruntime-gpu",
                                              "torch", "onnx", "tensorrt")},
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **device_facts(),  # governor; Jetson board, power mode, jetson_clocks
    }


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def matmul_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Best observed fp32 GEMM rate of numpy's BLAS on n×n matrices (2n³ FLOPs per call)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best, end = np.inf, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
