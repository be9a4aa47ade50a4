"""One rt-bench variant in a process of its own (rt-bench's default mode), so that no variant
shares a process, thread pools or allocator with another: PyTorch's OpenMP workers and ORT's
intra-op threads slow each other when they live side by side, and anymodal's rows must be
timed as they are served, without torch imported.

The parent (bench/processes.py) starts it as `sys.executable -c "from anymodal.bench.worker
import main; main()"` and talks JSON lines: requests on stdin, one reply per request on the
process's original stdout (anything else printing to stdout, C libraries included, is sent
to stderr instead, so it cannot corrupt the protocol):
  {"op": "build", "bundle", "run", "variant", "pattern", "batch", "seq", "threads", "spinning"}
      -> {"ok": true, "torch_imported": bool, "peak_rss_mb": float} | {"ok": false, "absent": why}
  {"op": "time", "seconds": s, "min_calls": n} -> {"ms": [latency of each call, ms], "peak_rss_mb"}
  {"op": "quit"} -> exits
Any exception -> {"error": "Type: message"} and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _build(req: dict):
    """(callable or None, reason absent) of one variant of one condition."""
    from pathlib import Path

    from anymodal.runtime.bundle import Bundle

    from .variants import build_variants

    bundle = Bundle(Path(req["bundle"]))
    run = Path(req["run"]) if req.get("run") else None
    ready, absent = build_variants([req["variant"]], bundle, run, req["pattern"], req["batch"], req["seq"],
                                   req["threads"], req.get("spinning", False))
    return ready.get(req["variant"]), absent.get(req["variant"])


def timed_calls(fn, seconds: float, min_calls: int) -> list[float]:
    """Latencies (ms) of back-to-back calls of fn until `seconds` are spent and `min_calls` made."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    while len(out) < min_calls or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    from .machine import peak_rss_mb

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (ours, torch.compile's, C libraries') go to stderr
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    fn = None
    try:
        for line in sys.stdin:
            req = json.loads(line)
            if req["op"] == "build":
                fn, why = _build(req)
                reply({"ok": True, "torch_imported": "torch" in sys.modules, "peak_rss_mb": peak_rss_mb()}
                      if fn is not None else {"ok": False, "absent": why})
            elif req["op"] == "time":
                if fn is None:
                    raise RuntimeError("'time' before a successful 'build'")
                reply({"ms": timed_calls(fn, req["seconds"], req["min_calls"]), "peak_rss_mb": peak_rss_mb()})
            elif req["op"] == "quit":
                return
            else:
                raise ValueError(f"unknown op {req['op']!r}")
    except Exception as exc:  # one line the parent turns into a BenchWorkerError naming the variant
        reply({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
