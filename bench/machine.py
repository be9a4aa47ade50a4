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
    return matmul_peak_probe(n, seconds)["gflops"]


def matmul_peak_probe(n: int = 1024, seconds: float = 1.0) -> dict:
    """This machine's fp32 GEMM peak, best of several calls in this process, and whether the
    machine looked busy (1-min load average above the core count, or best and median calls
    more than 30 % apart: other work is taking the cores)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    best, median = min(times), float(np.median(times))
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    spread = median / best
    return {"gflops": 2 * n**3 / best / 1e9, "calls": len(times), "peak_spread": spread,
            "loadavg_1min": load, "cores": cores, "busy": load > cores or spread > 1.3}
