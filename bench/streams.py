"""`rt-bench streams --streams N[,N…]`: N live conversations at once, each turn sent as soon as the
previous one of its stream was answered (as fast as possible), sensors dropping in and out.

Per N, three runs on the same turns (one Runtime, so the same sessions):
  single      one stream alone, Conversation.add turn after turn: its p50 is the yardstick
  one-by-one  the N streams' turns in round-robin from one thread, Conversation.add each
  scheduler   N client threads, Scheduler.submit_turn each, waiting for the answer before
              the stream's next turn (turn latency = submit to result)
  requests    each stream's turns as ONE predict request (a caller re-scoring the whole
              conversation), `request_rounds` per stream: predict one by one vs N clients
              through Scheduler.submit — these ARE batched (per_n[N]["requests"])
Reported: turns/s, p50/p90/p99 turn latency and mean batch (jobs per graph call) of each,
`throughput_ratio` = scheduler / one-by-one turns/s, `p99_over_single_p50` = scheduler p99 /
single p50, the stream table's memory (now and its bound), the machine and its load. The
scheduler runs the turns waiting at once as one batched step-graph call (runtime/streams.py)
when the bundle has the batched step graph (`turns_batched`); the mean batch says how many
turns a call scored.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import InputError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

from .tables import markdown_section, print_section
from .timing import latency_stats

DROP_P, RETURN_P = 0.05, 0.2  # per turn: a reporting sensor drops / an absent one comes back


def drop_schedule(rng, turns: int) -> np.ndarray:
    """bool [turns, 3]: each sensor drops out and comes back at random (a two-state chain per
    sensor); a turn where all dropped keeps one at random (a turn needs a sensor)."""
    avail = np.ones((turns, len(MODALITIES)), bool)
    for t in range(1, turns):
        stay = rng.random(len(MODALITIES))
        avail[t] = np.where(avail[t - 1], stay >= DROP_P, stay < RETURN_P)
        if not avail[t].any():
            avail[t, rng.integers(len(MODALITIES))] = True
    return avail


def stream_turns(rng, turns: int, dims: dict[str, int]) -> list[dict]:
    """One stream's turns: Conversation.add keyword arguments ([dim] float32 or None)."""
    avail = drop_schedule(rng, turns)
    return [{MODALITY_NAMES[m]: rng.standard_normal(dims[m], dtype=np.float32) if avail[t, j] else None
             for j, m in enumerate(MODALITIES)} for t in range(turns)]


def _summary(lat_ms: list[float], elapsed_s: float, calls: int | None, jobs: int) -> dict:
    return {"turns": len(lat_ms), "turns_per_s": len(lat_ms) / elapsed_s, "elapsed_s": elapsed_s,
            "latency_ms": latency_stats(np.asarray(lat_ms)),
            "mean_batch": jobs / calls if calls else 1.0}


def _single(rt, plan: list[dict], max_context: int) -> dict:
    conv, lat = rt.conversation(max_context), []
    t_start = time.perf_counter()
    for kw in plan:
        t0 = time.perf_counter()
        conv.add(**kw)
        lat.append((time.perf_counter() - t0) * 1e3)
    return _summary(lat, time.perf_counter() - t_start, None, len(plan))


def _one_by_one(rt, plans: list[list[dict]], max_context: int) -> dict:
    convs, lat = [rt.conversation(max_context) for _ in plans], []
    t_start = time.perf_counter()
    for t in range(len(plans[0])):
        for conv, plan in zip(convs, plans):
            t0 = time.perf_counter()
            conv.add(**plan[t])
            lat.append((time.perf_counter() - t0) * 1e3)
    return _summary(lat, time.perf_counter() - t_start, None, len(lat))


def _run_clients(n: int, client) -> float:
    """Run client(k) for k < n on threads released together; the seconds until all are done.
    The first error a client raised is re-raised here, never lost."""
    errors: list[BaseException] = []
    start = threading.Barrier(n + 1)

    def run(k: int) -> None:
        start.wait()
        try:
            client(k)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for th in pool:
        th.start()
    start.wait()
    t_start = time.perf_counter()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t_start
    if errors:
        raise errors[0]
    return elapsed


def _scheduled(rt, plans: list[list[dict]], max_context: int, max_batch: int, max_delay_ms: float) -> dict:
    lat: list[list[float]] = [[] for _ in plans]
    with rt.scheduler(max_batch=max_batch, max_delay_ms=max_delay_ms, max_queue=max(256, len(plans)),
                      max_streams=len(plans), max_context=max_context) as s:
        def client(k: int) -> None:
            for kw in plans[k]:
                t0 = time.perf_counter()
                s.submit_turn(k, **kw).result()
                lat[k].append((time.perf_counter() - t0) * 1e3)

        elapsed = _run_clients(len(plans), client)
        memory = {"bytes": s.streams.memory_bytes(), "bound_bytes": s.streams.memory_bound_bytes,
                  "streams": len(s.streams)}
        batched = s.streams.batched
        stats = s.stats
    res = _summary([x for per in lat for x in per], elapsed, stats.calls, stats.jobs)
    res["memory"], res["turns_batched"] = memory, batched
    return res


def window_request(plan: list[dict]) -> dict:
    """A stream's turns as one Runtime.predict request (what a caller that re-scores the whole
    conversation sends): each reporting modality [L, dim], its availability as `present`."""
    kw, present = {}, {}
    for name in (MODALITY_NAMES[m] for m in MODALITIES):
        col = np.array([t[name] is not None for t in plan])
        if col.any():
            dim = next(t[name] for t in plan if t[name] is not None).shape[0]
            kw[name] = np.stack([t[name] if t[name] is not None else np.zeros(dim, np.float32) for t in plan])
            present[name] = col
    return {**kw, "present": present}


def _requests(rt, reqs: list[dict], rounds: int, max_batch: int, max_delay_ms: float) -> dict:
    """Whole requests, `rounds` per client: predict one by one vs N clients through the
    Scheduler (each sends its next request once the last was answered)."""
    lat, t_start = [], time.perf_counter()
    for _ in range(rounds):
        for kw in reqs:
            t0 = time.perf_counter()
            rt.predict(**kw)
            lat.append((time.perf_counter() - t0) * 1e3)
    one = _summary(lat, time.perf_counter() - t_start, None, len(lat))
    lats: list[list[float]] = [[] for _ in reqs]
    with rt.scheduler(max_batch=max_batch, max_delay_ms=max_delay_ms, max_queue=max(256, len(reqs))) as s:
        def client(k: int) -> None:
            for _ in range(rounds):
                t0 = time.perf_counter()
                s.submit(**reqs[k]).result()
                lats[k].append((time.perf_counter() - t0) * 1e3)

        elapsed = _run_clients(len(reqs), client)
        stats = s.stats
    sched = _summary([x for per in lats for x in per], elapsed, stats.calls, stats.jobs)
    return {"one_by_one": one, "scheduler": sched, "rounds": rounds,
            "throughput_ratio": sched["turns_per_s"] / one["turns_per_s"]}


def run_streams_bench(bundle_dir: Path | None = None, streams: tuple[int, ...] = (16,), turns: int = 50,
                      max_context: int = 64, threads: int | None = None, max_batch: int = 16,
                      max_delay_ms: float = 2, seed: int = 0, request_rounds: int = 3, progress=print) -> dict:
    """See the module docstring; one entry per N in `per_n`."""
    from anymodal.runtime import Runtime

    from .machine import machine_info, matmul_peak_probe, peak_rss_mb

    if not streams or min(streams) < 1:
        raise InputError(f"--streams {','.join(map(str, streams))}: give stream counts >= 1, e.g. 16 or 16,64")
    if turns < 1:
        raise InputError(f"--turns {turns}: at least 1 turn per stream")
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir, _ = default_bundle(progress, causal=True)
    rt = Runtime(bundle_dir, threads=threads)
    dims = rt.bundle.dims
    rng = np.random.default_rng(seed)
    warm = stream_turns(rng, max(turns, 8), dims)
    progress("warm-up: one stream, then the scheduler …")
    _single(rt, warm, max_context)  # loads every single-stream step graph the schedules use
    # and the batched step graph: else its session is made (and first run) inside the first
    # scheduler run, and the 16 turns of that first batch wait for it: the p99 of 800 turns
    warm_rng = np.random.default_rng(seed + 1)  # the measured plans stay those of `seed`
    _scheduled(rt, [stream_turns(warm_rng, 2, dims) for _ in range(max(streams))], max_context, max_batch,
               max_delay_ms)
    load = matmul_peak_probe()
    per_n = {}
    for n in streams:
        plans = [stream_turns(rng, turns, dims) for _ in range(n)]
        progress(f"N = {n}: single stream, one-by-one, scheduler ({n} × {turns} turns) …")
        single = _single(rt, plans[0], max_context)
        one = _one_by_one(rt, plans, max_context)
        sched = _scheduled(rt, plans, max_context, max_batch, max_delay_ms)
        progress(f"N = {n}: whole requests (each stream's {turns} turns re-scored), predict vs scheduler …")
        requests = _requests(rt, [window_request(p) for p in plans], request_rounds, max_batch, max_delay_ms)
        per_n[str(n)] = {
            "streams": n, "single": single, "one_by_one": one, "scheduler": sched,
            "throughput_ratio": sched["turns_per_s"] / one["turns_per_s"],
            "p99_over_single_p50": sched["latency_ms"]["p99"] / single["latency_ms"]["p50"],
            "requests": requests,
        }
    conv = rt.conversation(max_context)
    return {"benchmark": "streams", "model": rt.bundle.model["kind"], "bundle": str(bundle_dir),
            "mode": conv.mode, "backend": rt.backend_name, "turns": turns, "max_context": max_context,
            "threads": threads, "max_batch": max_batch, "max_delay_ms": max_delay_ms, "seed": seed,
            "turns_batched": all(r["scheduler"]["turns_batched"] for r in per_n.values()),
            "request_rounds": request_rounds, "per_n": per_n, "machine_load": load, "machine": machine_info(),
            "peak_rss_mb": peak_rss_mb()}


# --------------------------------------------------------------------------- reporting
def streams_rows(res: dict):
    header = ["N", "way", "per s", "p50 ms", "p90 ms", "p99 ms", "mean batch", "vs one-by-one"]
    rows = []
    for key, r in res["per_n"].items():
        base = r["one_by_one"]["turns_per_s"]
        for way in ("single", "one_by_one", "scheduler"):
            w = r[way]
            lat = w["latency_ms"]
            rows.append([key if way == "single" else "", f"turns: {way.replace('_', '-')}", f"{w['turns_per_s']:.0f}",
                         f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{w['mean_batch']:.2f}",
                         f"{w['turns_per_s'] / base:.2f}×" if way != "single" else "—"])
        req = r["requests"]
        for way in ("one_by_one", "scheduler"):
            w = req[way]
            lat = w["latency_ms"]
            rows.append(["", f"requests: {way.replace('_', '-')}", f"{w['turns_per_s']:.0f}", f"{lat['p50']:.2f}",
                         f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{w['mean_batch']:.2f}",
                         f"{w['turns_per_s'] / req['one_by_one']['turns_per_s']:.2f}×"])
    return header, rows


def streams_summary_lines(res: dict) -> list[str]:
    m, load = res["machine"], res["machine_load"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), {res['threads'] or 'all'} threads, {m['timestamp']}",
             f"bundle: {res['bundle']} ({res['model']}); conversation mode {res['mode']}, backend {res['backend']}",
             f"{res['turns']} turns per stream, max_context {res['max_context']}, random sensor drops; scheduler "
             f"max_batch {res['max_batch']}, max_delay_ms {res['max_delay_ms']:g}",
             ("scheduler: the turns waiting at once run as one batched step-graph call (mean batch = turns per call)"
              if res["turns_batched"] else
              "scheduler: turns run one at a time (no batched step graph in this bundle/backend): mean batch 1"),
             f"requests: each stream's {res['turns']} turns as one predict request (availability as `present`), "
             f"{res['request_rounds']} per stream; these are batched (mean batch = requests per graph call)"]
    for key, r in res["per_n"].items():
        mem = r["scheduler"]["memory"]
        lines.append(f"N = {key}: throughput_ratio {r['throughput_ratio']:.2f} (scheduler / one-by-one turns/s), "
                     f"p99_over_single_p50 {r['p99_over_single_p50']:.2f}; stream memory {mem['bytes']:,} bytes "
                     f"of the bound {mem['bound_bytes']:,} ({mem['streams']} streams); whole requests: scheduler / "
                     f"predict one-by-one {r['requests']['throughput_ratio']:.2f}×")
    lines.append(f"machine load: {load['loadavg_1min']:.1f} (1-min average, {load['cores']} cores); matmul "
                 f"best/median {load['peak_spread']:.2f}; peak RSS {res['peak_rss_mb']:.0f} MB")
    if load["busy"]:
        lines.append("WARNING: the machine was busy while measuring: absolute figures are noisy, compare the "
                     "ratios within this run")
    return lines


def print_streams_result(res: dict, console) -> None:
    header, rows = streams_rows(res)
    print_section(console, f"rt-bench streams — {res['model']}, {res['turns']} turns per stream", header, rows,
                  streams_summary_lines(res))


def streams_markdown(res: dict) -> str:
    header, rows = streams_rows(res)
    return markdown_section("rt-bench streams", header, rows, streams_summary_lines(res))


def bench_streams_command(streams: tuple[int, ...], bundle: Path | None, threads: int | None, turns: int,
                          max_context: int, json_out: Path | None, markdown: Path | None, console) -> dict:
    """`rt-bench streams`: run, print the table, write JSON / markdown."""
    from .report import write_outputs

    res = run_streams_bench(bundle, streams, turns, max_context, threads,
                            progress=lambda s: console.print(f"[dim]{s}[/dim]"))
    print_streams_result(res, console)
    write_outputs(res, json_out, markdown, streams_markdown, None, None)
    return res
