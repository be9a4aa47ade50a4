"""Where Runtime.predict's time goes: inside the backend's session.run, and outside it (request
checks, graph choice, feeds, file re-checks, output checks, decoding, the Prediction), measured
in situ, i.e. right after graph runs as in serving, not in a loop of its own.

    rt-bench overhead [--bundle B] [--conditions a,at,atv] [--shapes 1x24,16x50]

rt-bench's `runtime − session-run` compares two rows' wall times; this splits one call, so
its `outside` figure is free of session.run's noise (min / p10 / p50 over --calls calls).
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


def outside_session_run(bundle_dir, pattern: str, batch: int, seq: int, calls: int = 1000,
                        threads: int = 2) -> dict:
    rt = Runtime(bundle_dir, backend="ort-cpu", threads=threads)
    inside: list[int] = []
    run_impl = rt.backend._run_impl

    def timed(session, feeds):  # the backend's session.run call, timed
        t0 = time.perf_counter_ns()
        out = run_impl(session, feeds)
        inside.append(time.perf_counter_ns() - t0)
        return out

    rt.backend._run_impl = timed
    req = make_request(Bundle(bundle_dir), pattern, batch, seq)
    rt.predict(**req)  # load outside the measurement
    inside.clear()
    total = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        rt.predict(**req)
        total.append(time.perf_counter_ns() - t0)
    out_us = (np.asarray(total) - np.asarray(inside)) / 1e3
    return {"condition": pattern, "batch": batch, "seq": seq, "calls": calls,
            "outside_us": {"min": float(out_us.min()), "p10": float(np.percentile(out_us, 10)),
                           "p50": float(np.percentile(out_us, 50))},
            "session_run_p50_us": float(np.percentile(inside, 50)) / 1e3}


def overhead_line(r: dict) -> str:
    o = r["outside_us"]
    return (f"{{{','.join(r['condition'])}}} B{r['batch']}×L{r['seq']}: outside session.run min {o['min']:.0f} "
            f"p10 {o['p10']:.0f} p50 {o['p50']:.0f} µs; session.run p50 {r['session_run_p50_us']:.0f} µs "
            f"({r['calls']} calls)")


def overhead_command(bundle_dir: Path | None, conditions: list[str], shapes: list[tuple[int, int]], calls: int,
                     threads: int, json_out: Path | None, echo=print) -> list[dict]:
    """`rt-bench overhead`: one line per shape and condition as it is measured; the records as JSON."""
    from anymodal.runtime.errors import InputError
    from anymodal.runtime.jsonio import write_json

    if calls < 1:
        raise InputError(f"--calls must be >= 1, got {calls}")
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir = default_bundle(echo)[0]
    echo(f"1-min load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {threads} threads")
    records = []
    for batch, seq in shapes:
        for cond in conditions:
            records.append(outside_session_run(bundle_dir, parse_pattern(cond), batch, seq, calls, threads))
            echo(overhead_line(records[-1]))
    if json_out:
        write_json({"bundle": str(bundle_dir), "threads": threads, "records": records}, json_out)
    return records
