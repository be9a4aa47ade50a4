"""ORT intra-op spinning on or off: latency *and* CPU spent per request, the measurement behind
the Runtime's default (`spinning=False`). rt-bench's ort / ort-spin rows show latency only;
spinning workers keep burning CPU after a call returns, which a latency row cannot see.

    python -m anymodal.bench.spinning [--bundle B] [--condition a] [--gap-ms 2] [--blocks 6]

Two Runtimes (off, on) serve the same request in alternating blocks of 40 calls, with a gap
between calls as a server has between requests; CPU = process CPU time over the block (the
spinning after each call included) per request.
"""

from __future__ import annotations

import os
import time

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.patterns import parse_pattern
from anymodal.runtime.runtime import Runtime

from .tool_args import bundle_or_default, bundle_parser
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


def main(argv=None) -> None:
    ap = bundle_parser(__doc__)
    ap.add_argument("--condition", default="a")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args(argv)
    bundle = bundle_or_default(args.bundle)
    r = spinning_report(bundle, parse_pattern(args.condition), args.threads, args.blocks, args.gap_ms / 1e3)
    print(f"{{{','.join(r['condition'])}}} B1, {r['threads']} threads, {r['requests']} requests per mode, "
          f"gap {r['gap_ms']:g} ms, 1-min load {r['loadavg_1min']:.1f} on {os.cpu_count()} cores")
    for mode in ("off", "on"):
        m = r[mode]
        print(f"spinning {mode:3s}: p50 {m['p50_ms']:.3f} ms, p90 {m['p90_ms']:.3f} ms, min {m['min_ms']:.3f} ms, "
              f"CPU {m['cpu_ms_per_request']:.3f} ms per request")


if __name__ == "__main__":
    main()
