"""`rt-bench stream`: a live conversation of L turns with sensors dropping in and out.

Every turn is timed two ways, interleaved (alternating order) so machine noise hits both:
  stream   Conversation.add of the one new utterance (step graphs + KV caches on a causal
           bundle; conv.mode says "rescore" when the bundle cannot stream)
  rescore  Runtime.predict over the conversation's window (its utterances since reset or
           eviction, absent ones masked) — what a caller of the full graph does every turn today
The drop schedule `--drop v@5-12,a@20-22` removes modalities for ranges of turns (1-based,
inclusive); features are random at the bundle's dims (latency does not depend on them).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import InputError, PatternError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES, parse_pattern

from .tables import markdown_section, print_section
from .timing import latency_stats

# the streaming goals (turn cost flat, faster than re-scoring, cheap pattern switches), shown
# beside the measured figures (never used to decide anything; docs/performance.md)
GOAL_FLATNESS, GOAL_SPEEDUP, GOAL_SWITCH_MS = 1.3, 5.0, 0.05
EARLY_TURN, SPEEDUP_TURN = 10, 50
NEIGHBOURHOOD = 5  # a turn's robust latency: median over the passes × the 5 turns nearest to it


class DropSpecError(InputError):
    """A --drop schedule is malformed; the message names the item and what was expected."""


@dataclass(frozen=True)
class Drop:
    modalities: str  # pattern letters, e.g. "v" or "av"
    first: int  # 1-based turn, inclusive
    last: int  # 1-based turn, inclusive

    def __str__(self) -> str:
        return f"{self.modalities}@{self.first}-{self.last}"


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_drops(spec: str | None, turns: int) -> tuple[Drop, ...]:
    """'v@5-12,a@20-22' -> Drops. A modality or several (av@3-4), one turn (t@7) or a range."""
    if spec is None or not spec.strip():
        return ()
    drops = []
    for item in spec.split(","):
        if "@" not in item:
            raise DropSpecError(f"--drop item {item!r}: expected MODALITY@FIRST-LAST (e.g. v@5-12) or "
                                "MODALITY@TURN")
        mods, _, rng = item.partition("@")
        try:
            pattern = parse_pattern(mods.strip())
        except PatternError as exc:
            raise DropSpecError(f"--drop item {item!r}: {exc}") from None
        match = _RANGE.match(rng)
        if not match:
            raise DropSpecError(f"--drop item {item!r}: turns {rng!r} are not FIRST-LAST or TURN (integers)")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first > last:
            raise DropSpecError(f"--drop item {item!r}: reversed range {first}-{last} (first turn after last)")
        if first < 1 or last > turns:
            raise DropSpecError(f"--drop item {item!r}: turns {first}-{last} outside the conversation's "
                                f"turns 1-{turns}")
        drops.append(Drop(pattern, first, last))
    return tuple(drops)


def availability(turns: int, base: str, drops: tuple[Drop, ...]) -> np.ndarray:
    """bool [L, 3] (MODALITIES order): which sensors report at each turn."""
    base = parse_pattern(base)
    avail = np.zeros((turns, len(MODALITIES)), bool)
    for j, m in enumerate(MODALITIES):
        avail[:, j] = m in base
    for d in drops:
        for m in d.modalities:
            if m not in base:
                raise DropSpecError(f"--drop {d}: {MODALITY_NAMES[m]} is not among the conversation's "
                                    f"modalities {{{','.join(base)}}}")
            avail[d.first - 1:d.last, MODALITIES.index(m)] = False
    empty = np.flatnonzero(~avail.any(axis=1))
    if empty.size:
        t = int(empty[0]) + 1
        by = ", ".join(str(d) for d in drops if d.first <= t <= d.last)
        raise DropSpecError(f"--drop leaves turn {t} with no modality ({by} drop all of "
                            f"{{{','.join(base)}}}); a turn needs at least one sensor")
    return avail


def turn_patterns(avail: np.ndarray) -> list[str]:
    return ["".join(m for j, m in enumerate(MODALITIES) if row[j]) for row in avail]


def switch_turns(patterns: list[str]) -> list[int]:
    """1-based turns whose pattern differs from the previous turn's."""
    return [t + 1 for t in range(1, len(patterns)) if patterns[t] != patterns[t - 1]]


def nearest_turns(turn: int, patterns: list[str], pattern: str | None = None,
                  width: int = NEIGHBOURHOOD, exclude: tuple[int, ...] = ()) -> list[int]:
    """The `width` 1-based turns nearest to `turn` (ties: the earlier) whose pattern is `pattern`
    (None: any), other than `exclude`, sorted. Flatness compares steady turns of one pattern: a
    turn inside a drop costs less because fewer modalities run, not because the conversation is
    shorter, and a switch turn may cost more."""
    candidates = [u for u in range(1, len(patterns) + 1)
                  if (pattern is None or patterns[u - 1] == pattern) and u not in exclude]
    return sorted(sorted(candidates, key=lambda u: (abs(u - turn), u))[:width])


def turn_estimate(samples: np.ndarray, turns: list[int], stat=np.median) -> float:
    """Robust latency of a turn: median over the passes × its nearest turns (stat=np.min: the
    floor, what a turn costs when nothing else takes the cores). samples: [R, L] ms."""
    return float(stat(samples[:, [u - 1 for u in turns]]))


def switch_cost(samples: np.ndarray, patterns: list[str]) -> dict:
    """What a pattern switch adds: each switch turn against the turns of the same pattern that
    did not switch (same repeat's median), so the pattern's own cost does not count as switching."""
    switches = switch_turns(patterns)
    extra, skipped = [], []
    for t in switches:
        steady = [u for u in range(2, len(patterns) + 1) if patterns[u - 1] == patterns[t - 1]
                  and u not in switches]
        if not steady:  # a one-turn drop: nothing of that pattern to compare with
            skipped.append(t)
            continue
        base = np.median(samples[:, [u - 1 for u in steady]], axis=1)  # [R]
        extra.extend((samples[:, t - 1] - base).tolist())
    steady_all = [u - 1 for u in range(2, len(patterns) + 1) if u not in switches]
    return {"switch_turns": switches, "compared": len(extra), "skipped_turns": skipped,
            "extra_ms_p50": float(np.median(extra)) if extra else None,
            "extra_ms_mean": float(np.mean(extra)) if extra else None,
            "switch_ms_p50": float(np.median(samples[:, [t - 1 for t in switches]])) if switches else None,
            "steady_ms_p50": float(np.median(samples[:, steady_all])) if steady_all else None}


def _window_request(feats: dict, avail: np.ndarray, start: int, end: int) -> dict:
    """Runtime.predict arguments for turns start..end-1 (0-based): the modalities that report in
    the window, each with its per-utterance availability."""
    kw, present = {}, {}
    for j, m in enumerate(MODALITIES):
        col = avail[start:end, j]
        if col.any():
            kw[MODALITY_NAMES[m]] = feats[m][start:end]
            present[MODALITY_NAMES[m]] = col
    return {**kw, "present": present}


def _outputs(p) -> np.ndarray:
    return np.atleast_1d(np.asarray(p.probs if getattr(p, "probs", None) is not None else p.score, np.float64))


def run_stream_bench(bundle_dir: Path | None = None, turns: int = 200, max_context: int | None = None,
                     drops: str | None = None, base: str = "atv", repeats: int = 3, threads: int | None = None,
                     seed: int = 0, progress=print, precision: str | None = None) -> dict:
    """Per-turn latency of streaming vs re-scoring the window; see the module docstring."""
    from anymodal.runtime import Runtime

    from .machine import machine_info, matmul_peak_probe, peak_rss_mb

    if turns < 2:
        raise InputError(f"--turns {turns}: a conversation needs at least 2 turns")
    if repeats < 1:
        raise InputError(f"--repeats {repeats}: at least 1")
    max_context = turns if max_context is None else max_context
    if max_context < 1:
        raise InputError(f"--max-context {max_context}: at least 1")
    plan = parse_drops(drops, turns)
    avail = availability(turns, base, plan)  # bad schedules fail before any bundle is built
    patterns = turn_patterns(avail)
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir, _ = default_bundle(progress, causal=True)
    rt = Runtime(bundle_dir, threads=threads, precision=precision)
    conv = rt.conversation(max_context=max_context)
    dims = rt.bundle.dims
    rng = np.random.default_rng(seed)
    feats = {m: rng.standard_normal((turns, dims[m]), dtype=np.float32) for m in MODALITIES}
    steps = [{MODALITY_NAMES[m]: feats[m][t] if avail[t, j] else None for j, m in enumerate(MODALITIES)}
             for t in range(turns)]

    # warm-up, not timed: every step graph (a full stream pass), the first use of each full graph,
    # the conversation's window at each turn (what rescore re-scores: the same utterances, also
    # after an eviction) and the agreement of the two ways on every turn
    progress(f"warm-up: {turns} turns streamed ({conv.mode} mode) and re-scored …")
    diff, windows, window, graphs = 0.0, [], [], []
    conv.reset()
    for t in range(turns):
        p = conv.add(**steps[t])
        window.append(conv.length)
        windows.append(_window_request(feats, avail, t + 1 - conv.length, t + 1))
        full = rt.predict(**windows[t])
        graphs.append(full.graph)
        last = full.probs[-1] if full.probs is not None else full.scores[-1]
        diff = max(diff, float(np.max(np.abs(_outputs(p) - np.atleast_1d(last)))))
    load = matmul_peak_probe()
    stream, rescore = np.zeros((repeats, turns)), np.zeros((repeats, turns))
    for r in range(repeats):
        progress(f"pass {r + 1}/{repeats}: {turns} turns …")
        conv.reset()
        for t in range(turns):
            for which in ((0, 1) if (r + t) % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if which == 0:
                    conv.add(**steps[t])
                else:
                    rt.predict(**windows[t])
                ms = (time.perf_counter() - t0) * 1e3
                (stream if which == 0 else rescore)[r, t] = ms
    late = turns
    early = min(EARLY_TURN, turns)
    at = min(SPEEDUP_TURN, turns)

    same = patterns[late - 1]  # early and late turns of the late turn's pattern
    steady = dict(pattern=same, exclude=tuple(switch_turns(patterns)))
    early_turns, late_turns = nearest_turns(early, patterns, **steady), nearest_turns(late, patterns, **steady)
    at_turns = nearest_turns(at, patterns)

    measurable = early_turns and late_turns and not set(early_turns) & set(late_turns)

    def flat(samples):  # None where the schedule leaves no separate early and late steady turns
        if not measurable:
            return None
        e, l_ = turn_estimate(samples, early_turns), turn_estimate(samples, late_turns)
        e_min, l_min = turn_estimate(samples, early_turns, np.min), turn_estimate(samples, late_turns, np.min)
        return {"early_ms": e, "late_ms": l_, "ratio": l_ / e,
                "floor": {"early_ms": e_min, "late_ms": l_min, "ratio": l_min / e_min}}

    s_at, r_at = turn_estimate(stream, at_turns), turn_estimate(rescore, at_turns)
    s_min, r_min = turn_estimate(stream, at_turns, np.min), turn_estimate(rescore, at_turns, np.min)
    per_turn = [{"turn": t + 1, "pattern": patterns[t], "switch": t > 0 and patterns[t] != patterns[t - 1],
                 "window": window[t], "rescore_graph": graphs[t],
                 "stream_ms": float(np.median(stream[:, t])), "rescore_ms": float(np.median(rescore[:, t])),
                 "stream_min_ms": float(stream[:, t].min()), "rescore_min_ms": float(rescore[:, t].min())}
                for t in range(turns)]
    return {
        "benchmark": "stream", "model": rt.bundle.model["kind"], "bundle": str(bundle_dir),
        "causal": bool(rt.bundle.model["config"].get("causal", False)), "mode": conv.mode,
        "precision": rt.bundle.precision,
        "backend": rt.backend_name, "turns": turns, "max_context": max_context,
        "base": parse_pattern(base), "drops": [str(d) for d in plan], "repeats": repeats,
        "threads": threads, "seed": seed,
        "latency_ms": {"stream": latency_stats(stream.ravel()), "rescore": latency_stats(rescore.ravel())},
        "flatness": {"early_turn": early, "late_turn": late, "pattern": same, "early_turns": early_turns,
                     "late_turns": late_turns, "stream": flat(stream), "rescore": flat(rescore)},
        "speedup": {"turn": at, "turns": at_turns, "stream_ms": s_at, "rescore_ms": r_at, "ratio": r_at / s_at,
                    "floor": {"stream_ms": s_min, "rescore_ms": r_min, "ratio": r_min / s_min}},
        "switch": switch_cost(stream, patterns),
        "agreement_max_abs_diff": diff,
        "memory_bytes": int(conv.memory_bytes),
        "per_turn": per_turn,
        "samples_ms": {"stream": stream.tolist(), "rescore": rescore.tolist()},
        "machine_load": load, "machine": machine_info(), "peak_rss_mb": peak_rss_mb(),
    }


# --------------------------------------------------------------------------- reporting
def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _span(turns: list[int]) -> str:
    return " ".join(map(str, turns)) if turns != list(range(turns[0], turns[-1] + 1)) else f"{turns[0]}-{turns[-1]}"


def stream_rows(res: dict):
    f, late = res["flatness"], res["flatness"]["late_turn"]
    header = ["way", "mode", "p50 ms", "p90 ms", "p99 ms", f"turn {f['early_turn']} ms", f"turn {late} ms",
              f"turn {late} / {f['early_turn']}"]
    rows = []
    for way, mode in (("stream", res["mode"]), ("rescore", "full graph")):
        lat, fl = res["latency_ms"][way], f[way]
        rows.append([way, mode, f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                     *([f"{fl['early_ms']:.2f}", f"{fl['late_ms']:.2f}", f"{fl['ratio']:.2f}×"] if fl else ["—"] * 3)])
    return header, rows


def stream_summary_lines(res: dict) -> list[str]:
    s, sw, f, m = res["speedup"], res["switch"], res["flatness"], res["machine"]
    load = res["machine_load"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), {res['threads'] or 'all'} threads, {m['timestamp']}",
             f"bundle: {res['bundle']} ({res['model']}, {'causal' if res['causal'] else 'bidirectional'}); "
             f"conversation mode {res['mode']}, backend {res['backend']}, precision {res['precision']}",
             f"{res['turns']} turns, max_context {res['max_context']}, sensors {{{','.join(res['base'])}}}, "
             f"drops {', '.join(res['drops']) or 'none'}, {res['repeats']} passes; a turn's figure = median over "
             f"passes × its {len(s['turns'])} nearest turns"]
    if res["mode"] != "stream":
        lines.append(f"NOTE: the conversation runs in {res['mode']} mode (not causal, or no step graphs): 'stream' "
                     "re-scores the window every turn (the fallback)")
    lines.append(f"turn {s['turn']}: stream {s['stream_ms']:.2f} ms, rescore {s['rescore_ms']:.2f} ms: "
                 f"streaming {s['ratio']:.2f}× cheaper (goal ≥ {GOAL_SPEEDUP:g}×: {_met(s['ratio'] >= GOAL_SPEEDUP)}); "
                 f"floor (min of the same samples) {s['floor']['stream_ms']:.2f} vs {s['floor']['rescore_ms']:.2f} ms, "
                 f"{s['floor']['ratio']:.2f}×")
    if f["stream"] is None:
        lines.append(f"flatness: not measurable — the schedule leaves no separate steady {{{','.join(f['pattern'])}}} "
                     f"turns near turn {f['early_turn']} and turn {f['late_turn']}")
    else:
        lines.append(f"flatness: stream turn {f['late_turn']} / turn {f['early_turn']} = {f['stream']['ratio']:.2f}× "
                     f"(goal ≤ {GOAL_FLATNESS:g}×: {_met(f['stream']['ratio'] <= GOAL_FLATNESS)}); steady "
                     f"{{{','.join(f['pattern'])}}} turns {_span(f['early_turns'])} vs {_span(f['late_turns'])}; floor "
                     f"{f['stream']['floor']['early_ms']:.2f} → {f['stream']['floor']['late_ms']:.2f} ms, "
                     f"{f['stream']['floor']['ratio']:.2f}×")
    if sw["extra_ms_p50"] is None:
        lines.append("pattern switch: no switch turn with steady turns of its pattern to compare (see --drop)")
    else:
        lines.append(f"pattern switch: {sw['extra_ms_p50']:+.3f} ms p50 (mean {sw['extra_ms_mean']:+.3f}) over "
                     f"{sw['compared']} switch turn×pass samples vs steady turns of the same pattern "
                     f"(goal ≤ {GOAL_SWITCH_MS:g} ms: {_met(sw['extra_ms_p50'] <= GOAL_SWITCH_MS)}); switch turns "
                     + " ".join(map(str, sw["switch_turns"])))
    lines.append(f"stream vs rescore outputs: max |difference| {res['agreement_max_abs_diff']:.2e} over all turns")
    lines.append(f"conversation memory: {res['memory_bytes']:,} bytes for max_context {res['max_context']}; "
                 f"peak RSS {res['peak_rss_mb']:.0f} MB")
    lines.append(f"machine load: {load['loadavg_1min']:.1f} (1-min average, {load['cores']} cores); matmul "
                 f"best/median {load['peak_spread']:.2f}")
    if load["busy"]:
        lines.append("WARNING: the machine was busy while measuring: absolute figures are noisy, compare the "
                     "ratios within this run")
    return lines


def print_stream_result(res: dict, console) -> None:
    header, rows = stream_rows(res)
    print_section(console, f"rt-bench stream — {res['model']}, {res['turns']} turns", header, rows,
                  stream_summary_lines(res))


def stream_markdown(res: dict) -> str:
    header, rows = stream_rows(res)
    return markdown_section("rt-bench stream", header, rows, stream_summary_lines(res))


def plot_stream(res: dict, path: str | Path) -> Path:
    """Per-turn latency (median and min over passes) vs turn index, stream and rescore, drops shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    turns = [r["turn"] for r in res["per_turn"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, d in enumerate(res["drops"]):
        mods, _, rng = d.partition("@")
        first, _, last = rng.partition("-")
        ax.axvspan(int(first) - 0.5, int(last) + 0.5, color=f"C{2 + i % 6}", alpha=0.15,
                   label=f"{'+'.join(MODALITY_NAMES[m] for m in mods)} absent {first}-{last}")
    ax.plot(turns, [r["rescore_ms"] for r in res["per_turn"]], color="C1", label="rescore window (full graph)")
    ax.plot(turns, [r["stream_ms"] for r in res["per_turn"]], color="C0", label=f"stream ({res['mode']})")
    for way, color in (("rescore", "C1"), ("stream", "C0")):  # the floor: what a turn costs uncontended
        ax.plot(turns, [r[f"{way}_min_ms"] for r in res["per_turn"]], color=color, lw=0.7, ls=":",
                label=f"{way}, min over passes")
    sw = res["switch"]["switch_turns"]
    if sw:
        ax.plot(sw, [res["per_turn"][t - 1]["stream_ms"] for t in sw], "v", color="C0", ms=4,
                label="pattern switch")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))  # 2, 5, 10 — not 2×10⁰
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("turn")
    ax.set_ylabel("latency per turn (ms)")
    m = res["machine"]
    ax.set_title(f"{res['model']} — {res['turns']} turns, max_context {res['max_context']} — {m['cpu']}, "
                 f"{res['threads'] or m['cores']} threads", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bench_stream_command(condition: str | None, bundle: Path | None, threads: int | None, turns: int,
                         max_context: int | None, drop: str | None, repeats: int, json_out: Path | None,
                         markdown: Path | None, plot: Path | None, console, precision: str | None = None) -> dict:
    """`rt-bench stream`: run, print the table, write JSON / markdown / the PNG (beside the JSON
    unless --plot names it)."""
    from .report import write_outputs

    res = run_stream_bench(bundle, turns, max_context, drop, condition or "atv", repeats, threads,
                           progress=lambda s: console.print(f"[dim]{s}[/dim]"), precision=precision)
    print_stream_result(res, console)
    if plot is None and json_out is not None:
        plot = json_out.with_suffix(".png")
    written = write_outputs(res, json_out, markdown, stream_markdown, plot, plot_stream)
    if written:
        console.print(f"plot: {written}", markup=False, highlight=False)
    return res
