"""Two ways to run the same served graph, timed side by side in alternating rounds in one process
(the shared-machine rule: compare only ratios measured together):

    rt-bench ab --compare rewrites [--bundle B] [--conditions a,at,atv,masked]
    rt-bench ab --compare executor|executor-both [--threads 2] ...

* rewrites: the bundle's ORT copy as stored (rewritten at export, export/graph_rewrites.py) against
  the same copy traced again from the bundle's source run without the rewrites (needs the train
  extra, an fp32 bundle and its run folder; the default bundles have theirs).
* executor: ORT's sequential executor with --threads intra-op threads (what ort-cpu runs) against
  its parallel executor with --threads inter-op threads and 1 intra-op thread (independent
  branches, such as the modalities' chains, at once instead of each op split over the cores);
  executor-both: the parallel executor keeping --threads intra-op threads as well.

Prints per graph: the median over rounds of base/new (> 1: new is faster), the range, both
p50s, the load; --json writes the same records. docs/performance.md records what was run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from anymodal.runtime.backends.ort import OrtCpuBackend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import BundleError, InputError
from anymodal.runtime.patterns import parse_pattern
from anymodal.runtime.requests import MASKED

from .machine import cpu_model
from .timing import paired_ratio
from .variants import make_request, masked_feeds, specialised_feeds

COMPARES = ("rewrites", "executor", "executor-both")


def _feeds(bundle: Bundle, graph: str, batch: int, seq: int | None) -> dict:
    req = make_request(bundle, "atv" if graph == MASKED else graph, batch, seq)
    return masked_feeds(bundle, req) if graph == MASKED else specialised_feeds(bundle, req, bundle.float_dtype)[1]


def _graphs(spec: str) -> list[str]:
    """'a,at,masked' -> ["a", "at", "masked"]: each a pattern or the masked graph."""
    return [MASKED if g.strip() == MASKED else parse_pattern(g) for g in spec.split(",")]


def _source_run(bundle: Bundle) -> Path:
    """The run folder `--compare rewrites` re-traces the copies from, refused before anything runs."""
    run = bundle.manifest.get("source_run")
    if not run:
        raise BundleError(f"{bundle.path}: no source_run in the manifest (--compare rewrites re-traces the "
                          "ORT copies from the run the bundle was exported from; rt-export --run records it)")
    if bundle.precision != "fp32":
        raise BundleError(f"{bundle.path}: serves {bundle.precision} graphs; --compare rewrites re-traces "
                          "fp32 ORT copies (give a bundle whose default precision is fp32)")
    return Path(run)


def _unrewritten_copy(run: Path, graph: str) -> bytes:
    """The ORT copy of `graph` as the tracer leaves it, from the run's weights."""
    import tempfile

    from anymodal.export.torch_export import export_graph
    from anymodal.train.checkpoint import load_run

    model = load_run(run)[0].eval()
    with tempfile.TemporaryDirectory() as tmp:
        return export_graph(model, graph, Path(tmp) / "copy.onnx", "fp32", ort_ops=True).read_bytes()


def _sessions(backend: OrtCpuBackend, graph: str, compare: str, threads: int, run: Path | None):
    """{"base": session, "new": session} of one graph."""
    import onnxruntime as ort

    base_opts, new_opts = backend.session_options(), backend.session_options()
    if compare == "rewrites":  # the stored (rewritten) copy is the new one
        base_src, new_src = _unrewritten_copy(run, graph), str(backend.bundle.ort_graph_path(graph))
    else:
        base_src = new_src = str(backend.graph_file(graph))
        new_opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        new_opts.inter_op_num_threads = threads
        if compare == "executor":  # the same cores as inter-op threads instead of intra-op ones
            new_opts.intra_op_num_threads = 1
        # executor-both: parallel branches, each op still split over the threads
    prov = ["CPUExecutionProvider"]
    return {"base": ort.InferenceSession(base_src, base_opts, providers=prov),
            "new": ort.InferenceSession(new_src, new_opts, providers=prov)}


def compare_graph(sessions: dict, feeds: dict, rounds: int, seconds: float) -> dict:
    """Alternating rounds (order rotating), each variant timed for seconds/rounds per round."""
    names = list(sessions)
    per_round: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for n in names:  # warm-up
        for _ in range(5):
            sessions[n].run(None, feeds)
    for r in range(rounds):
        for n in names[r % 2:] + names[:r % 2]:
            ms, end = [], time.perf_counter() + seconds / rounds
            while time.perf_counter() < end or len(ms) < 3:
                t0 = time.perf_counter()
                sessions[n].run(None, feeds)
                ms.append((time.perf_counter() - t0) * 1e3)
            per_round[n].append(np.asarray(ms))
    ratio = paired_ratio(per_round["base"], per_round["new"])
    return {"ratio": ratio, **{f"{n}_p50_ms": float(np.median(np.concatenate(c))) for n, c in per_round.items()}}


def _label(graph: str) -> str:
    return graph if graph == MASKED else "{" + ",".join(graph) + "}"


def ab_line(r: dict) -> str:
    q = r["ratio"]
    return (f"{_label(r['graph'])} B{r['batch']}" + (f"×L{r['seq']}" if r["seq"] else "")
            + f": base/new {q['median']:.3f} (rounds {q['lo']:.3f}–{q['hi']:.3f}, n={q['rounds']}); "
            f"p50 base {r['base_p50_ms']:.2f} ms, new {r['new_p50_ms']:.2f} ms; "
            f"1-min load {r['loadavg_1min']:.1f}")


def _check(compare: str, batch: int, seq: int, threads: int, rounds: int, seconds: float) -> None:
    if compare not in COMPARES:
        raise InputError(f"--compare {compare!r}: one of {', '.join(COMPARES)}")
    for option, value in (("--batch", batch), ("--seq", seq), ("--threads", threads), ("--rounds", rounds)):
        if value < 1:
            raise InputError(f"{option} must be >= 1, got {value}")
    if not seconds > 0:
        raise InputError(f"--seconds must be > 0, got {seconds:g}")


def ab_command(compare: str, bundle_dir: Path | None, conditions: str, batch: int, seq: int, threads: int,
               rounds: int, seconds: float, json_out: Path | None, echo=print) -> dict:
    """`rt-bench ab`: a header, then one line per graph as it is measured; the records as JSON."""
    from anymodal.runtime.jsonio import write_json

    _check(compare, batch, seq, threads, rounds, seconds)
    graphs = _graphs(conditions)
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir = default_bundle(echo)[0]
    bundle = Bundle(bundle_dir)
    run = _source_run(bundle) if compare == "rewrites" else None
    backend = OrtCpuBackend(bundle, threads=threads)
    check_file = bundle.ort_graph_path if compare == "rewrites" else backend.graph_file
    for graph in graphs:  # every file checked before anything is timed
        check_file(graph)
    seq_or_none = seq if bundle.family.inputs.caller_sets_length else None
    out = {"bundle": str(bundle_dir), "compare": compare, "cpu": cpu_model(), "cores": os.cpu_count(),
           "threads": threads, "rounds": rounds, "seconds": seconds, "records": []}
    echo(f"{out['cpu']}, {out['cores']} cores, {threads} threads; base vs new = {compare}")
    for graph in graphs:
        res = compare_graph(_sessions(backend, graph, compare, threads, run),
                            _feeds(bundle, graph, batch, seq_or_none), rounds, seconds)
        out["records"].append({"graph": graph, "batch": batch, "seq": seq_or_none, **res,
                               "loadavg_1min": os.getloadavg()[0]})
        echo(ab_line(out["records"][-1]))
    if json_out:
        write_json(out, json_out)
    return out
