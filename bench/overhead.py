"""Where Runtime.predict's time goes: inside ONNX Runtime's compiled binding (the graph run), and
outside it (request checks, graph choice, feeds, file re-checks, output checks, decoding, the
Prediction), measured in situ, i.e. right after graph runs as in serving, not in a loop of its own.

    rt-bench overhead [--bundle B] [--conditions a,at,atv] [--shapes 1x24,16x50]

rt-bench's `runtime − session-run` compares two rows' wall times, whose graph runs vary by
milliseconds on a shared machine; this splits the calls at the binding instead (a probe stands
in for the session's `_sess` and notes when its `run` is entered and left), so its figures are
free of the graph run's noise. Each round calls Runtime.predict, then a plain `session.run` on
the same session and feeds; min / p10 / p50 over --calls rounds of:
  outside   Runtime.predict's time outside the binding call;
  wrapper   `session.run`'s own time outside the binding call (ONNX Runtime's Python wrapper);
  over      outside − wrapper of the same round: Runtime.predict's cost over `session.run`, the
            graph run excluded (the probe's own cost is in both and cancels).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.patterns import parse_pattern
from anymodal.runtime.runtime import Runtime

from .variants import make_request, specialised_feeds


class _TimedBinding:
    """Stands in for an InferenceSession's compiled binding (`_sess`): every `run` call notes
    when it was entered and left."""

    def __init__(self, binding, marks: list):
        self._binding, self._marks = binding, marks

    def __getattr__(self, name):  # everything else asked of the binding, looked up once:
        value = getattr(self._binding, name)  # later reads cost what they cost on the binding
        setattr(self, name, value)
        return value

    def run(self, *args):
        self._marks.append(time.perf_counter_ns())
        out = self._binding.run(*args)
        self._marks.append(time.perf_counter_ns())
        return out


def _stats(us: np.ndarray) -> dict:
    return {"min": float(us.min()), "p10": float(np.percentile(us, 10)), "p50": float(np.percentile(us, 50))}


def outside_session_run(bundle_dir, pattern: str, batch: int, seq: int, calls: int = 1000,
                        threads: int = 2) -> dict:
    bundle = Bundle(bundle_dir)
    rt = Runtime(bundle_dir, backend="ort-cpu", threads=threads)
    req = make_request(bundle, pattern, batch, seq)
    graph, feeds = specialised_feeds(bundle, req, bundle.float_dtype)
    session = rt.backend.session(graph)  # loaded, not run yet: the runtime's first call finds the probe
    names = [o.name for o in session.get_outputs()]
    marks: list[int] = []
    binding = session._sess
    session._sess = _TimedBinding(binding, marks)
    try:
        rt.predict(**req)
        session.run(names, feeds)
        rows = []  # per round: predict total, its binding call, session.run total, its binding call
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            rt.predict(**req)
            t1 = time.perf_counter_ns()
            inside = marks[-1] - marks[-2]
            session.run(names, feeds)
            t2 = time.perf_counter_ns()
            rows.append((t1 - t0, inside, t2 - t1, marks[-1] - marks[-2]))
    finally:
        session._sess = binding
    total, inside, plain, plain_inside = (np.asarray(c, dtype=float) / 1e3 for c in zip(*rows))
    outside, wrapper = total - inside, plain - plain_inside
    return {"condition": pattern, "batch": batch, "seq": seq, "calls": calls,
            "outside_us": _stats(outside), "session_run_wrapper_us": _stats(wrapper),
            "over_session_run_us": _stats(outside - wrapper),
            "session_run_p50_us": float(np.percentile(inside, 50))}


def overhead_line(r: dict) -> str:
    o, w, d = r["outside_us"], r["session_run_wrapper_us"], r["over_session_run_us"]
    return (f"{{{','.join(r['condition'])}}} B{r['batch']}×L{r['seq']}: outside session.run min {o['min']:.0f} "
            f"p10 {o['p10']:.0f} p50 {o['p50']:.0f} µs; session.run's own wrapper min {w['min']:.0f} "
            f"p10 {w['p10']:.0f} p50 {w['p50']:.0f} µs; over session.run min {d['min']:.0f} p10 {d['p10']:.0f} "
            f"p50 {d['p50']:.0f} µs; session.run p50 {r['session_run_p50_us']:.0f} µs ({r['calls']} calls)")


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
