"""Interleaved latency measurement: warm up, then call every variant once per round (in a
rotating order) until the duration is spent, so that machine noise hits all variants alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def measure_interleaved(variants: dict[str, Callable[[], object]], warmup_s: float = 1.0,
                        duration_s: float = 5.0, min_rounds: int = 20, max_rounds: int = 100_000
                        ) -> dict[str, np.ndarray]:
    """Latencies in milliseconds per variant."""
    names = list(variants)
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        for n in names:
            variants[n]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    end = time.perf_counter() + duration_s
    r = 0
    while r < max_rounds and (r < min_rounds or time.perf_counter() < end):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            variants[n]()
            samples[n].append((time.perf_counter() - t0) * 1e3)
        r += 1
    return {n: np.asarray(s) for n, s in samples.items()}


def latency_stats(ms: np.ndarray) -> dict[str, float]:
    return {"min": float(ms.min()), "mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max())}


def split_rounds(ms: np.ndarray, rounds: int) -> list[np.ndarray]:
    """In-process samples (one call per interleaved round) as `rounds` consecutive chunks, the
    shape of the separate-process measurement."""
    return [c for c in np.array_split(ms, min(rounds, ms.size)) if c.size]


def round_stats(per_round: list[np.ndarray]) -> dict:
    """The headline figure: the median of the rounds' medians, with their spread (range) and
    every round's median, in ms."""
    p50s = [float(np.median(r)) for r in per_round]
    return {"count": len(p50s), "p50": float(np.median(p50s)), "lo": min(p50s), "hi": max(p50s), "p50s": p50s}


def paired_ratio(slow: list[np.ndarray], fast: list[np.ndarray]) -> dict | None:
    """How many times faster `fast` is than `slow`, round by round (both ran in every round,
    side by side): the median of the per-round ratios of medians and their range."""
    n = min(len(slow), len(fast))
    if n == 0:
        return None
    ratios = [float(np.median(slow[i]) / np.median(fast[i])) for i in range(n)]
    return {"median": float(np.median(ratios)), "lo": min(ratios), "hi": max(ratios), "rounds": n}
