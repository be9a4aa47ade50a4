"""Facts a benchmark figure depends on beyond the CPU model: the frequency governor and, on a
Jetson, the board, its power mode (nvpmodel) and whether jetson_clocks pinned the clocks.

Files are read under `root` and tools found on PATH, so tests can run this against fakes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return None


def _tool(*cmd: str) -> str | None:
    """A tool's stdout, or None where it is missing or fails (e.g. needs root)."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cpu_governors(root: Path = Path("/")) -> list[str]:
    """Distinct scaling governors of the online CPUs ([] where cpufreq is not exposed)."""
    found = {_read(p) for p in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"))}
    return sorted(g for g in found if g)


def nvpmodel_mode() -> str | None:
    """'NV Power Mode: MAXN' -> 'MAXN' (nvpmodel -q)."""
    out = _tool("nvpmodel", "-q")
    m = re.search(r"NV Power Mode:\s*(\S+)", out or "")
    return m.group(1) if m else None


def jetson_clocks_on() -> bool | None:
    """True when jetson_clocks has pinned every CPU's minimum frequency to its maximum (what it
    does); None where `jetson_clocks --show` is missing or not permitted (it needs root)."""
    out = _tool("jetson_clocks", "--show")
    cpus = re.findall(r"^cpu\d+:.*?MinFreq=(\d+)\s+MaxFreq=(\d+)", out or "", flags=re.M)
    return None if not cpus else all(lo == hi for lo, hi in cpus)


def device_facts(root: Path = Path("/")) -> dict:
    """{governor, jetson} — jetson is None off a Jetson (no /proc/device-tree/model naming one)."""
    model = _read(root / "proc/device-tree/model")
    jetson = None
    if model and "jetson" in model.lower():
        jetson = {"model": model, "nvpmodel": nvpmodel_mode(), "jetson_clocks": jetson_clocks_on(),
                  "l4t": _read(root / "etc/nv_tegra_release")}
    governors = cpu_governors(root)
    return {"governor": ",".join(governors) if governors else None, "jetson": jetson}
