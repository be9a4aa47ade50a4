"""What a bundle costs a device: bytes on disk per precision, the runtime's import time, and
resident memory after loading every graph and after one request per pattern (Jetson budgets).

Memory and import time are measured in a fresh child process per precision and memory mode:
the parent has numpy, onnxruntime and maybe torch loaded already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Goals for the paper-sized MoMKE bundle (the Jetson memory and start-up budget, docs/jetson.md),
# reported beside the figures.
GOALS = {"import_s": 0.3, "loaded_mb": 150.0}


def disk_bytes(bundle_dir: Path) -> dict[str, int]:
    """Bytes on disk of each precision's graphs and weights (files shared between precisions
    counted in each), and of the whole bundle folder."""
    from anymodal.runtime.bundle import Bundle

    manifest = Bundle(bundle_dir).manifest  # BundleError for a folder that is not a bundle
    sizes = {rel: int(f["bytes"]) for rel, f in manifest["files"].items()}
    out = {}
    for precision, variant in manifest["variants"].items():
        files = set()
        copies = variant.get("ort_graphs", {}).get("graphs", {})  # the ORT-optimised copies too
        for info in [*variant["graphs"].values(), *copies.values()]:
            files.add(info["file"])
            files.update(info.get("data_files", []))
        out[precision] = sum(sizes[f] for f in files)
    out["bundle"] = sum(p.stat().st_size for p in Path(bundle_dir).rglob("*") if p.is_file())
    return out


def _proc_kb(path: str, key: str) -> float | None:
    try:
        for line in open(path):
            if line.startswith(key):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _memory_mb() -> dict[str, float | None]:
    """RSS (every mapping counted, so a weights file mapped by 8 sessions counts 8 times) and
    PSS (shared pages divided among their users: what the process really costs), MiB."""
    rss, pss = _proc_kb("/proc/self/status", "VmRSS:"), _proc_kb("/proc/self/smaps_rollup", "Pss:")
    return {"rss": rss and rss / 1024, "pss": pss and pss / 1024}


# The child times the import first, before anything of anymodal is loaded.
_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import anymodal.runtime
import_s = time.perf_counter() - t0
from anymodal.bench.footprint import measure_loaded
print(json.dumps(measure_loaded(import_s, *json.loads(sys.argv[1]))))
"""


def measure_loaded(import_s: float, bundle_dir: str, precision: str, threads: int | None,
                   low_memory: bool) -> dict:
    """In the child: RSS after import, after loading every graph, after one request per pattern."""
    at_import = _memory_mb()
    from anymodal.bench.variants import make_request
    from anymodal.runtime import Runtime
    from anymodal.runtime.patterns import ALL_PATTERNS

    rt = Runtime(bundle_dir, backend="ort-cpu", precision=precision, threads=threads, preload=True,
                 low_memory=low_memory)
    loaded = _memory_mb()
    for pattern in ALL_PATTERNS:  # one conversation of 24 utterances (or one sample) per pattern
        rt.predict(**{k: v[0] for k, v in make_request(rt.bundle, pattern, 1, 24).items()})
    return {"precision": precision, "low_memory": low_memory, "import_s": import_s,
            "after_import_mb": at_import, "loaded_mb": loaded, "after_requests_mb": _memory_mb(),
            "graphs_loaded": len(rt.bundle.graphs)}


def latency_by_mode(bundle_dir: str, threads: int | None, patterns=("a", "atv"), repeats: int = 30) -> dict:
    """What low_memory costs in speed: p50 per pattern of both modes, requests interleaved in one
    process (batch 1, 24 utterances or the dataset's sequence lengths)."""
    import time as _time

    import numpy as np

    from anymodal.bench.variants import make_request
    from anymodal.runtime import Runtime

    modes = {low: Runtime(bundle_dir, backend="ort-cpu", threads=threads, low_memory=low) for low in (False, True)}
    out = {}
    for pattern in patterns:
        req = {k: v[0] for k, v in make_request(modes[False].bundle, pattern, 1, 24).items()}
        times = {low: [] for low in modes}
        for _ in range(repeats + 2):  # the first two are warm-up
            for low, rt in modes.items():
                t0 = _time.perf_counter()
                rt.predict(**req)
                times[low].append(_time.perf_counter() - t0)
        p50 = {low: float(np.median(t[2:])) * 1e3 for low, t in times.items()}
        out[pattern] = {"p50_ms": p50[False], "low_memory_p50_ms": p50[True], "slowdown": p50[True] / p50[False]}
    return out


def footprint(bundle_dir: Path, threads: int | None = None) -> dict:
    """Disk bytes per precision; per precision and memory mode, a fresh child's import time and RSS."""
    bundle_dir = Path(bundle_dir)
    disk = disk_bytes(bundle_dir)
    memory = []
    for precision in (p for p in disk if p != "bundle"):
        for low_memory in (False, True):
            args = json.dumps([str(bundle_dir), precision, threads, low_memory])
            # PYTHONSAFEPATH: the working directory (a checkout, say) never shadows installed packages
            done = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True,
                                  timeout=600, env={**os.environ, "PYTHONSAFEPATH": "1"})
            if done.returncode != 0:
                raise RuntimeError(f"footprint child ({precision}) failed:\n{done.stderr[-2000:]}")
            memory.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"bundle": str(bundle_dir), "disk_bytes": disk, "memory": memory, "goals": GOALS,
            "low_memory_latency": latency_by_mode(str(bundle_dir), threads)}


def _mb(m: dict) -> str:
    return " / ".join("–" if m[k] is None else f"{m[k]:.0f}" for k in ("rss", "pss"))


def footprint_table(report: dict) -> str:
    """Markdown: one row per precision and memory mode; memory as RSS / PSS in MiB."""
    rows = ["| precision | low_memory | on disk | import | after import | all graphs loaded | "
            "after one request per pattern |", "|---|---|---|---|---|---|---|"]
    for m in report["memory"]:
        mb = report["disk_bytes"][m["precision"]] / 1e6
        rows.append(f"| {m['precision']} | {m['low_memory']} | {mb:.1f} MB | {m['import_s']:.2f} s "
                    f"| {_mb(m['after_import_mb'])} | {_mb(m['loaded_mb'])} | {_mb(m['after_requests_mb'])} |")
    for pattern, t in report.get("low_memory_latency", {}).items():
        rows.append(f"\nlow_memory latency, {{{','.join(pattern)}}}: p50 {t['p50_ms']:.2f} -> "
                    f"{t['low_memory_p50_ms']:.2f} ms ({t['slowdown']:.2f}x, interleaved in one process)")
    g = report["goals"]
    rows.append(f"\nMemory as RSS / PSS in MiB. Goals (paper-sized MoMKE): import ≤ {g['import_s']} s, "
                f"≤ {g['loaded_mb']:.0f} MiB with all graphs loaded (fp32).")
    return "\n".join(rows)
