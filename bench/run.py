"""rt-bench: latency, throughput, efficiency and parameters of one condition (or all 7), every
variant measured in alternating rounds (docs/ARCHITECTURE.md §9): by default each in a process of its own
(bench/processes.py), with in_process=True all in this one (interleaved call by call)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import InputError
from anymodal.runtime.families import DEFAULT_FAMILY
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITY_NAMES, parse_pattern

from .machine import machine_info, matmul_peak_probe, peak_rss_mb
from .macs import model_macs
from .processes import WorkerPool, measure_rounds
from .timing import latency_stats, measure_interleaved, paired_ratio, round_stats, split_rounds
from .variants import ALL_VARIANTS, build_variants

DEFAULT_VARIANTS = ALL_VARIANTS
DEFAULT_ROUNDS = 10
# speedup key -> (the slower variant, the faster one)
SPEEDUPS = {"ort_vs_torch": ("torch", "ort"), "ort_vs_masked": ("ort-masked", "ort"),
            "masked_vs_torch": ("torch", "ort-masked"), "ort_vs_reference_eager": ("reference-eager", "ort"),
            "ort_vs_reference_compiled": ("reference-compiled", "ort"),
            "ort_vs_reference_int8": ("reference-int8", "ort"),
            "ort_int8_vs_reference_int8": ("reference-int8", "ort-int8")}


def parse_variants(spec: str) -> tuple[str, ...]:
    if spec == "all":
        return ALL_VARIANTS
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in ALL_VARIANTS]
    if unknown or not names:
        raise InputError(f"--backend: unknown {unknown or spec!r}; choose from {', '.join(ALL_VARIANTS)} or all")
    return names


def bundle_bytes(bundle: Bundle) -> dict[str, int | None]:
    """Bytes of each precision variant's files (the serving payload)."""
    out = {}
    for prec in ("fp32", "fp16"):
        v = bundle.manifest["variants"].get(prec)
        if v is None:
            out[prec] = None
            continue
        prefix = v["dir"] + "/"
        out[prec] = sum(f["bytes"] for rel, f in bundle.manifest["files"].items()
                        if rel.startswith(prefix) and "/" not in rel[len(prefix):])
    return out


def _variant_modalities(name: str, pattern: str) -> str:
    """What a variant computes: the masked graph and the PyTorch references (the authors' code
    runs all 9 expert passes, whatever is missing) encode all three."""
    return "atv" if name in ("torch", "ort-masked") or name.startswith("reference-") else pattern


def predict_overhead(samples: dict) -> dict | None:
    """Runtime.predict's time over a raw session.run on the same session, ms: the difference of
    the p50s, the p50 of the per-round differences (both rows run in every round) and the
    difference of the minima (the least noisy estimate on a shared machine)."""
    if "runtime" not in samples or "session-run" not in samples:
        return None
    rt, raw = samples["runtime"], samples["session-run"]
    n = min(rt.size, raw.size)
    return {"p50": float(np.percentile(rt, 50) - np.percentile(raw, 50)),
            "paired_p50": float(np.percentile(rt[:n] - raw[:n], 50)),
            "min": float(rt.min() - raw.min()), "rounds": int(n)}


def _measure(names, bundle: Bundle, run: Path | None, pattern: str, batch: int, seq: int | None, threads: int,
             warmup_s: float, duration_s: float, spinning: bool, pool: WorkerPool | None, rounds: int):
    """({name: per-round latencies}, {name: reason absent}, {name: worker facts}); pool None =
    every variant in this process."""
    if pool is None:
        ready, absent = build_variants(names, bundle, run, pattern, batch, seq, threads, spinning)
        samples = measure_interleaved(ready, warmup_s, duration_s) if ready else {}
        return {n: split_rounds(ms, rounds) for n, ms in samples.items()}, absent, {}
    workers, absent, facts = pool.build(names, bundle.path, run, pattern, batch, seq, threads, spinning)
    return (measure_rounds(workers, warmup_s, duration_s, rounds) if workers else {}), absent, facts


def bench_condition(bundle: Bundle, run: Path | None, pattern: str, variants, batch: int, seq: int | None,
                    threads: int, warmup_s: float, duration_s: float, peak: float, spinning: bool = False,
                    pool: WorkerPool | None = None, rounds: int = DEFAULT_ROUNDS) -> dict:
    per_round, absent, facts = _measure(variants, bundle, run, pattern, batch, seq, threads, warmup_s,
                                        duration_s, spinning, pool, rounds)
    cfg, kind = bundle.model["config"], bundle.model["kind"]
    res = {}
    for name, chunks in per_round.items():
        ms = np.concatenate(chunks)
        stats, rs = latency_stats(ms), round_stats(chunks)
        macs = model_macs(kind, cfg, _variant_modalities(name, pattern), batch, seq)
        gflops = 2 * macs / (rs["p50"] / 1e3) / 1e9
        res[name] = {"latency_ms": stats, "rounds": rs, "throughput_per_s": batch * 1e3 / rs["p50"],
                     "samples": int(ms.size), "macs": macs, "gflops": gflops,
                     "fraction_of_peak": gflops / peak, **facts.get(name, {})}
    ratios = {k: paired_ratio(per_round[s], per_round[f]) if s in per_round and f in per_round else None
              for k, (s, f) in SPEEDUPS.items()}
    samples = {n: np.concatenate(c) for n, c in per_round.items()}

    params = bundle.manifest["params"]
    best = res.get("ort")
    out = {
        "condition": pattern, "model": kind, "batch": batch, "seq_len": seq,
        "threads": threads, "variants": res, "absent": absent,
        "isolation": {"mode": "in-process" if pool is None else "processes", "rounds": rounds},
        # how many times faster: the median over rounds of the per-round ratio, and its range
        "speedup": {k: r["median"] if r else None for k, r in ratios.items()},
        "speedup_spread": {k: r for k, r in ratios.items() if r},
        "predict_overhead_ms": predict_overhead(samples), "runtime_spinning": spinning,
        "params": {"total": params["served"], "active": params["active"][pattern]},
        "macs": model_macs(kind, cfg, pattern, batch, seq),
        "matmul_peak_gflops": peak,
        "fraction_of_peak": best["fraction_of_peak"] if best else None,
        "bundle_bytes": bundle_bytes(bundle),
    }
    inputs = bundle.family.inputs
    if not inputs.caller_sets_length:  # each modality at the model's own length; seq_len is None
        out["seq_lens"] = {MODALITY_NAMES[m]: n for m, n in inputs.example_lengths(cfg, None).items()}
    return out


# the default sweep: one conversation (latency) and a batch of long ones (throughput)
DEFAULT_SHAPES = ((1, 24), (16, 50))


def run_bench(conditions, bundle_dir: Path | None = None, run: Path | None = None, variants="all",
              batches=(1,), seq_lens=None, threads: int | None = None, warmup_s: float = 1.0,
              duration_s: float = 3.0, progress=print, model: str | None = None, shapes=None,
              spinning: bool = False, in_process: bool = False, rounds: int = DEFAULT_ROUNDS) -> dict:
    """seq_lens: conversation lengths of utterance-level models (default 24); sequence models'
    requests use the dataset's sequence lengths recorded in the model (absent_lengths), so
    seq_lens must stay None. shapes: (batch, seq) pairs instead of the batches × seq_lens product
    (rt-bench's default sweep is DEFAULT_SHAPES: B1×L24 and B16×L50). spinning: ORT intra-op
    spinning of the `runtime` and `session-run` rows (`ort` / `ort-spin` always show off / on).
    in_process: every variant in this process (PyTorch's and ORT's thread pools side by side,
    which slows both) instead of one worker process per variant; rounds: alternating rounds
    per condition (the reported figure is the median of the rounds' medians)."""
    patterns = ALL_PATTERNS if conditions == "all" else tuple(parse_pattern(c) for c in conditions)
    if rounds < 1:
        raise InputError(f"--rounds must be >= 1, got {rounds}")
    if bundle_dir is None:  # (conditions parsed first: a typo must not wait for a bundle build)
        from .default_bundle import default_bundle

        bundle_dir, run = default_bundle(progress, model or DEFAULT_FAMILY)
    bundle = Bundle(bundle_dir)
    kind = bundle.model["kind"]
    if model is not None and model != kind:
        raise InputError(f"--model {model} but the bundle {bundle_dir} holds a {kind} model")
    if not bundle.family.inputs.caller_sets_length:
        if seq_lens is not None:
            raise InputError("--seq-len applies to conversations of utterance-level models; sequence "
                             f"models use their sequence lengths {bundle.absent_lengths}")
        seq_lens = (None,)
    if shapes is None:
        shapes = tuple((b, s) for b in batches for s in (seq_lens or (24,)))
    if not bundle.family.inputs.caller_sets_length:
        shapes = tuple(dict.fromkeys((b, None) for b, _ in shapes))
    if run is None and bundle.manifest.get("source_run"):
        run = Path(bundle.manifest["source_run"])
    names = parse_variants(variants) if isinstance(variants, str) else tuple(variants)
    threads = threads or os.cpu_count() or 1
    runs = []
    with WorkerPool() as pool:
        for batch, seq in shapes:
            progress("measuring this machine's large-matmul rate …")
            load = matmul_peak_probe()  # just before the timings it is the yardstick for
            per = {}
            for p in patterns:
                progress(f"condition {{{','.join(p)}}} batch {batch}" + (f" seq {seq}" if seq else "") + " …")
                per[p] = bench_condition(bundle, run, p, names, batch, seq, threads, warmup_s, duration_s,
                                         load["gflops"], spinning, None if in_process else pool, rounds)
                per[p]["machine_load"] = load
            runs.append(per)
        rss = max([peak_rss_mb()] + [w.peak_rss_mb for w in pool.workers.values()])
    machine = machine_info()
    for per in runs:
        for obj in per.values():
            obj["peak_rss_mb"], obj["machine"] = rss, machine
    shaped = [per[patterns[0]] if len(patterns) == 1 and conditions != "all" else {"conditions": per}
              for per in runs]
    return shaped[0] if len(shaped) == 1 else {"runs": shaped}
