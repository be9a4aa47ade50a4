"""Two ways to run the same served graph, timed side by side in alternating rounds in one process
(the shared-machine rule: compare only ratios measured together):

    python -m anymodal.bench.session_ab --compare rewrites  [--bundle B] [--conditions a,at,atv,masked]
    python -m anymodal.bench.session_ab --compare executor|executor-both  ...

* rewrites: the bundle's ORT copy as stored (rewritten at export, export/graph_rewrites.py) against
  the same copy traced again from the bundle's source run without the rewrites (needs the train
  extra and the run folder; the default bundles have theirs).
* executor: ORT's sequential executor with --threads intra-op threads (what ort-cpu runs) against
  its parallel executor with --threads inter-op threads and 1 intra-op thread (independent
  branches, such as the modalities' chains, at once instead of each op split over the cores);
  executor-both: the parallel executor keeping --threads intra-op threads as well.

Prints per graph: the median over rounds of base/new (> 1: new is faster), the range, both
p50s, the load and the CPU. No figure is kept anywhere; docs/performance.md records what was run.
"""

from __future__ import annotations

import os
import time

import numpy as np

from anymodal.runtime.backends.ort import OrtCpuBackend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.requests import MASKED

from .machine import cpu_model
from .timing import paired_ratio
from .tool_args import bundle_or_default, bundle_parser
from .variants import make_request, masked_feeds, specialised_feeds


def _feeds(bundle: Bundle, graph: str, batch: int, seq: int | None) -> dict:
    req = make_request(bundle, "atv" if graph == MASKED else graph, batch, seq)
    return masked_feeds(bundle, req) if graph == MASKED else specialised_feeds(bundle, req, bundle.float_dtype)[1]


def _unrewritten_copy(bundle: Bundle, graph: str) -> bytes:
    """The ORT copy of `graph` as the tracer leaves it, from the bundle's source run's weights."""
    import tempfile
    from pathlib import Path

    from anymodal.export.torch_export import export_graph
    from anymodal.train.checkpoint import load_run

    run = bundle.manifest.get("source_run")
    if not run:
        raise SystemExit(f"{bundle.path}: no source_run in the manifest (--compare rewrites re-traces the copy)")
    model = load_run(run)[0].eval()
    with tempfile.TemporaryDirectory() as tmp:
        return export_graph(model, graph, Path(tmp) / "copy.onnx", "fp32", ort_ops=True).read_bytes()


def _sessions(backend: OrtCpuBackend, graph: str, compare: str, threads: int):
    """{"base": session, "new": session} of one graph."""
    import onnxruntime as ort

    path = backend.graph_file(graph)
    base_opts, new_opts = backend.session_options(), backend.session_options()
    base_src = new_src = str(path)
    if compare == "rewrites":
        base_src = _unrewritten_copy(backend.bundle, graph)
    elif compare == "executor":  # the same cores as inter-op threads instead of intra-op ones
        new_opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        new_opts.inter_op_num_threads = threads
        new_opts.intra_op_num_threads = 1
    elif compare == "executor-both":  # parallel branches, each op still split over the threads
        new_opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        new_opts.inter_op_num_threads = threads
    else:
        raise SystemExit(f"--compare {compare!r}: rewrites, executor or executor-both")
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


def main(argv=None) -> None:
    ap = bundle_parser(__doc__)
    ap.add_argument("--compare", required=True, choices=("rewrites", "executor", "executor-both"))
    ap.add_argument("--conditions", default="a,at,atv,masked", help="graphs, comma-separated")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=24, help="conversation length (utterance-level models)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0, help="per graph and variant, all rounds")
    args = ap.parse_args(argv)
    bundle = Bundle(bundle_or_default(args.bundle))
    seq = args.seq if bundle.family.inputs.caller_sets_length else None
    backend = OrtCpuBackend(bundle, threads=args.threads)
    print(f"{cpu_model()}, {os.cpu_count()} cores, {args.threads} threads; base vs new = {args.compare}")
    for graph in args.conditions.split(","):
        res = compare_graph(_sessions(backend, graph, args.compare, args.threads),
                            _feeds(bundle, graph, args.batch, seq), args.rounds, args.seconds)
        r = res["ratio"]
        print(f"{graph} B{args.batch}" + (f"×L{seq}" if seq else "") + f": base/new {r['median']:.3f} "
              f"(rounds {r['lo']:.3f}–{r['hi']:.3f}, n={r['rounds']}); p50 base {res['base_p50_ms']:.2f} ms, "
              f"new {res['new_p50_ms']:.2f} ms; 1-min load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
