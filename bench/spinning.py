"""ORT intra-op spinning on or off: latency *and* CPU spent per request, the measurement behind
the Runtime's default (`spinning=False`). rt-bench's ort / ort-spin rows show latency only;
spinning workers keep burning CPU after a call returns, which a latency row cannot see.

    rt-bench spinning [--bundle B] [--condition a] [--gap-ms 2] [--blocks 6]

Two Runtimes (off, on) serve the same request in alternating blocks of 40 calls, with a gap
between calls as a server has between requests; CPU = process CPU time over the block (the
spinning after each call included) per request.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.patterns import parse_pattern
from anymodal.runtime.runtime import Runtime

from .variants import make_request

BLOCK = 40


def spinning_report(bundle_dir, pattern: str = "a", threads: int = 2, blocks: int = 6,
                    gap_s: float = 0.002, seq: int = 24) -> dict:
    bundle = Bundle(bundle_dir)
    req = make_request(bundle, pattern, 1, seq)
    rts = {mode: Runtime(bundle_dir, backend="ort-cpu", threads=threads, spinning=mode == "on")
           for mode in ("off", "on")}
    for rt in rts.values():
        rt.predict(**req)  # load outside the measurement
    wall = {m: [] for m in rts}
    cpu = dict.fromkeys(rts, 0)
    for b in range(blocks):
        for mode in ("off", "on") if b % 2 else ("on", "off"):
            c0 = time.process_time_ns()
            for _ in range(BLOCK):
                t0 = time.perf_counter_ns()
                rts[mode].predict(**req)
                wall[mode].append(time.perf_counter_ns() - t0)
                time.sleep(gap_s)
            time.sleep(0.05)  # spinning workers wind down inside their own block
            cpu[mode] += time.process_time_ns() - c0
    out = {"condition": pattern, "threads": threads, "gap_ms": gap_s * 1e3, "requests": blocks * BLOCK,
           "loadavg_1min": os.getloadavg()[0]}
    for mode, ns in wall.items():
        ms = np.asarray(ns) / 1e6
        out[mode] = {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                     "min_ms": float(ms.min()), "cpu_ms_per_request": cpu[mode] / 1e6 / (blocks * BLOCK)}
    return out


def spinning_lines(r: dict) -> list[str]:
    head = (f"{{{','.join(r['condition'])}}} B1, {r['threads']} threads, {r['requests']} requests per mode, "
            f"gap {r['gap_ms']:g} ms, 1-min load {r['loadavg_1min']:.1f} on {os.cpu_count()} cores")
    return [head] + [f"spinning {mode:3s}: p50 {m['p50_ms']:.3f} ms, p90 {m['p90_ms']:.3f} ms, "
                     f"min {m['min_ms']:.3f} ms, CPU {m['cpu_ms_per_request']:.3f} ms per request"
                     for mode, m in ((mode, r[mode]) for mode in ("off", "on"))]


def spinning_command(bundle_dir: Path | None, condition: str, threads: int, blocks: int, gap_ms: float,
                     json_out: Path | None, echo=print) -> dict:
    """`rt-bench spinning`: the report's lines; the report as JSON."""
    from anymodal.runtime.errors import InputError
    from anymodal.runtime.jsonio import write_json

    if blocks < 1 or gap_ms < 0:
        raise InputError(f"--blocks must be >= 1 and --gap-ms >= 0, got {blocks} and {gap_ms:g}")
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir = default_bundle(echo)[0]
    r = spinning_report(bundle_dir, parse_pattern(condition), threads, blocks, gap_ms / 1e3)
    for line in spinning_lines(r):
        echo(line)
    if json_out:
        write_json({"bundle": str(bundle_dir), **r}, json_out)
    return r
