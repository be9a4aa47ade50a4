"""rt-bench profile --out DIR: where each served graph's time goes, per op type, from ONNX Runtime's
own profiler, next to the graph's FLOPs, its achieved GFLOP/s and this machine's matmul peak.

For every condition (and, with --all-conditions, the masked graph) the graph ort-cpu serves is
opened twice with the backend's own session options: once plain, timed call by call (the
GFLOP/s figures; profiling slows a run), once with ORT profiling on, whose per-node kernel
times are summed per op type. "% of peak" is best call against best call: the graph's fastest
run against the fastest of a large ORT MatMul timed just before it, at the same threads (the
least load-dependent pair; medians under load move with whoever else runs). Shares are the robust figure on a shared machine: load slows
every op alike, absolute µs are not.

Written to DIR: `<graph>-B<batch>xL<seq>.json` per graph and shape (the table, FLOPs, rates,
machine, load) and `profile.md` (every table).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from anymodal.runtime.backends.ort import OrtCpuBackend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import ProfileError
from anymodal.runtime.patterns import ALL_PATTERNS, parse_pattern
from anymodal.runtime.requests import MASKED

from .machine import cpu_model, machine_info, matmul_peak_probe
from .macs import model_macs
from .ort_peak import ort_matmul_peak
from .variants import make_request, masked_feeds, specialised_feeds

PEAK_S = 0.5  # seconds of large MatMuls before each graph (the best call counts)
GEMM_OPS = ("MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def op_table(events: list[dict], skip_runs: int = 0) -> list[dict]:
    """Per op type of ORT profiler events: nodes (distinct), µs per run, share of the kernel
    time; largest first. Only node kernel times count (not session overhead), and only those of
    the runs after the first `skip_runs` (warm-up: thread pool start, first-call allocations)."""
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(runs) <= skip_runs:
        raise ProfileError(f"the ORT profile holds {len(runs)} runs, {skip_runs} of them warm-up")
    since = runs[skip_runs]
    total: dict[str, float] = defaultdict(float)
    nodes: dict[str, set] = defaultdict(set)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= since:
            op = e["args"]["op_name"]
            total[op] += e["dur"]
            nodes[op].add(e["name"])
    whole = sum(total.values())
    if whole <= 0:
        raise ProfileError("the ORT profile holds no node kernel times")
    counted = len(runs) - skip_runs
    return [{"op": op, "nodes": len(nodes[op]), "us": us / counted, "share": us / whole}
            for op, us in sorted(total.items(), key=lambda kv: -kv[1])]


def _options(backend: OrtCpuBackend, profile_prefix: str | None = None):
    """The backend's own session options (threads, spinning, executor), profiling on if asked."""
    opts = backend.session_options()
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return opts


def _timed(session, feeds: dict, calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        session.run(None, feeds)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def profile_graph(backend: OrtCpuBackend, graph: str, feeds: dict, calls: int, scratch: Path) -> dict:
    """{ops, kernel_us, run_ms / run_min_ms (median / best of plain session.run calls), file}."""
    import onnxruntime as ort

    path, warmup = backend.graph_file(graph), max(3, calls // 10)
    plain = ort.InferenceSession(str(path), _options(backend), providers=["CPUExecutionProvider"])
    ms = _timed(plain, feeds, calls, warmup)
    prof = ort.InferenceSession(str(path), _options(backend, str(scratch / f"ort-{graph}")),
                                providers=["CPUExecutionProvider"])
    _timed(prof, feeds, calls, warmup)
    trace = Path(prof.end_profiling())
    try:
        table = op_table(json.loads(trace.read_text()), skip_runs=warmup)
    finally:
        trace.unlink()
    return {"ops": table, "kernel_us": sum(r["us"] for r in table), "run_ms": statistics.median(ms),
            "run_min_ms": min(ms), "file": path.name}


def _graphs(bundle: Bundle, conditions) -> list[tuple[str, str]]:
    """(graph, modalities it computes) per served graph: the conditions' graphs, + masked for all."""
    patterns = ALL_PATTERNS if conditions == "all" else tuple(parse_pattern(c) for c in conditions)
    out = [(p, p) for p in patterns]
    if conditions == "all":
        out.append((MASKED, "atv"))
    return out


def profile_bench(bundle_dir: Path, conditions, out_dir: Path, shapes, threads: int | None = None,
                  calls: int = 200, spinning: bool = False, progress=print) -> list[dict]:
    """Profile every served graph of `conditions` ("all" or patterns) at every (batch, seq) of
    `shapes`; write DIR/<graph>-B<b>xL<s>.json and DIR/profile.md; return the records."""
    bundle = Bundle(bundle_dir)
    threads = threads or os.cpu_count() or 1
    backend = OrtCpuBackend(bundle, threads=threads, spinning=spinning)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs, cfg, kind = bundle.family.inputs, bundle.model["config"], bundle.model["kind"]
    if not inputs.caller_sets_length:
        shapes = tuple(dict.fromkeys((b, None) for b, _ in shapes))
    records = []
    for batch, seq in shapes:
        numpy_peak = matmul_peak_probe()
        for graph, modalities in _graphs(bundle, conditions):
            # the yardstick right beside each graph's timing: on a shared machine the load moves
            peak = ort_matmul_peak(_options(backend), seconds=PEAK_S)
            progress(f"profiling graph {graph} batch {batch}" + (f" seq {seq}" if seq else "") + " …")
            req = make_request(bundle, modalities, batch, seq)
            g, feeds = ((MASKED, masked_feeds(bundle, req)) if graph == MASKED
                        else specialised_feeds(bundle, req, bundle.float_dtype))
            if g != graph:
                raise ProfileError(f"the runtime serves graph {g!r} for condition {graph!r}")
            prof = profile_graph(backend, graph, feeds, calls, out_dir)
            flop = 2 * model_macs(kind, cfg, modalities, batch, seq)
            gflops = flop / (prof["run_ms"] / 1e3) / 1e9
            best = flop / (prof["run_min_ms"] / 1e3) / 1e9  # best call vs best call: load-robust
            rec = {"graph": graph, "file": prof["file"], "batch": batch, "seq_len": seq, "threads": threads,
                   "calls": calls, "mflop": flop / 1e6, "run_ms": prof["run_ms"], "run_min_ms": prof["run_min_ms"],
                   "gflops": gflops, "best_gflops": best,
                   "kernel_us": prof["kernel_us"], "peak_gflops": peak["gflops"],
                   "numpy_peak_gflops": numpy_peak["gflops"], "fraction_of_peak": best / peak["gflops"],
                   "gemm_share": sum(r["share"] for r in prof["ops"] if r["op"] in GEMM_OPS),
                   "ops": prof["ops"], "loadavg": list(os.getloadavg()), "cpu": cpu_model(),
                   "machine": machine_info()}
            name = f"{graph}-B{batch}" + (f"xL{seq}" if seq else "")
            (out_dir / f"{name}.json").write_text(json.dumps(rec, indent=1))
            records.append(rec)
    (out_dir / "profile.md").write_text("\n\n".join(markdown(r) for r in records) + "\n")
    return records


def summary_line(r: dict) -> str:
    shape = f"B{r['batch']}" + (f"×L{r['seq_len']}" if r["seq_len"] else "")
    return (f"graph {r['graph']} ({r['file']}) {shape}: {r['mflop']:.0f} MFLOP in {r['run_ms']:.2f} ms p50 "
            f"({r['gflops']:.1f} GFLOP/s), best {r['run_min_ms']:.2f} ms = {r['best_gflops']:.1f} GFLOP/s, "
            f"{100 * r['fraction_of_peak']:.0f} % of the ORT matmul peak "
            f"{r['peak_gflops']:.0f} GFLOP/s (numpy {r['numpy_peak_gflops']:.0f}); GEMM ops "
            f"{100 * r['gemm_share']:.0f} % of kernel time; {r['threads']} threads, load "
            f"{r['loadavg'][0]:.1f}, {r['cpu']}")


def markdown(r: dict) -> str:
    rows = [f"| {o['op']} | {o['nodes']} | {o['us']:.1f} | {100 * o['share']:.1f} % |" for o in r["ops"]]
    return "\n".join([f"### {summary_line(r)}", "", "| op | nodes | µs per run | share |", "|---|---:|---:|---:|",
                      *rows])
