"""rt-bench's default mode: every variant in a worker process of its own (bench/worker.py),
timed in alternating rounds. In each round every worker, one at a time and in a rotating order,
runs its variant for a slice of the condition's duration while the others wait idle, so that
machine noise hits all variants alike while no two variants ever share a process."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import BenchWorkerError

WORKER_CODE = "from anymodal.bench.worker import main; main()"
# an idle worker's thread pools (PyTorch's OpenMP, ORT's intra-op) may still spin briefly after
# its last call; the next worker starts after this pause so that it never races them
SETTLE_S = 0.02
BUILD_TIMEOUT_S = 900.0  # torch.compile of the reference on a busy 2-core machine


class Worker:
    """One variant's process: start, ask (one JSON line each way), close."""

    def __init__(self, variant: str):
        self.variant = variant
        self.peak_rss_mb = 0.0  # the largest the worker reported
        self._stderr = tempfile.TemporaryFile(mode="w+")
        # PYTHONSAFEPATH: the working folder never joins sys.path (a checkout's folders would
        # shadow the installed packages)
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     env={**os.environ, "PYTHONSAFEPATH": "1"})

    def ask(self, request: dict, timeout_s: float) -> dict:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._fail("exited before the request")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            self.proc.kill()
            self._fail(f"no reply to {request['op']!r} within {timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            self._fail(f"exited with status {self.proc.returncode}")
        reply = json.loads(line)
        if "error" in reply:
            self._fail(reply["error"])
        self.peak_rss_mb = max(self.peak_rss_mb, reply.get("peak_rss_mb", 0.0))
        return reply

    def _fail(self, what: str):
        self._stderr.seek(0)
        tail = self._stderr.read()[-1500:].strip()
        raise BenchWorkerError(f"rt-bench worker of variant {self.variant!r}: {what}"
                               + (f"\n--- its stderr (tail) ---\n{tail}" if tail else ""))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


class WorkerPool:
    """One Worker per variant name, started on first use and kept for all conditions of a run
    (model loading and torch.compile happen once); a context manager closing them all."""

    def __init__(self):
        self.workers: dict[str, Worker] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for w in self.workers.values():
            w.close()

    def build(self, names, bundle_dir: Path, run: Path | None, pattern: str, batch: int, seq: int | None,
              threads: int, spinning: bool):
        """({name: Worker ready to time}, {name: reason absent}, {name: facts}) for one condition."""
        ready, absent, facts = {}, {}, {}
        for name in names:
            w = self.workers.get(name) or self.workers.setdefault(name, Worker(name))
            r = w.ask({"op": "build", "bundle": str(bundle_dir), "run": str(run) if run else None,
                       "variant": name, "pattern": pattern, "batch": batch, "seq": seq, "threads": threads,
                       "spinning": spinning}, BUILD_TIMEOUT_S)
            if r["ok"]:
                ready[name] = w
                facts[name] = {"torch_imported": r["torch_imported"], "peak_rss_mb": r["peak_rss_mb"]}
            else:
                absent[name] = r["absent"]
        return ready, absent, facts


def measure_rounds(workers: dict[str, Worker], warmup_s: float, duration_s: float, rounds: int,
                   min_calls: int = 3) -> dict[str, list[np.ndarray]]:
    """Latencies (ms) per variant per round: a warm-up round (discarded), then `rounds` rounds
    in which every worker runs its variant for duration_s / rounds (at least min_calls calls)."""
    names = list(workers)

    def one_round(r: int, seconds: float) -> dict[str, list[float]]:
        out = {}
        for n in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(SETTLE_S)
            out[n] = workers[n].ask({"op": "time", "seconds": seconds, "min_calls": min_calls},
                                    timeout_s=seconds + BUILD_TIMEOUT_S)["ms"]
        return out

    one_round(0, warmup_s)
    per_round: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for r in range(rounds):
        for n, ms in one_round(r, duration_s / rounds).items():
            per_round[n].append(np.asarray(ms))
    return per_round
