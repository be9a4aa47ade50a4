"""Turns of many conversations of one pattern as ONE batched step-graph call (issue 25).

    results = run_turn_batch(pool, [(conv, req), ...])   # TurnPrediction or the exception, in order

Each conversation is a different one, streaming, holding a row of `pool` (runtime/cache_pool.py);
every request has the same pattern. Per conversation the batch does what Conversation.add_request
does — make room (an eviction rebuilds the caches by re-stepping, as alone), write the utterance,
score it, write its key/value slots in place, decode — with one call of the pattern's batched step
graph for the scoring: inputs [S, 1, d] features, [S] positions, fill counts and pool rows, the
pools themselves in place; outputs [S, ...] of which row s is conversation s's. If the call fails
or returns NaN/Inf anywhere, the turns are undone and run one at a time, so each error reaches
only its own turn (as the Scheduler does for batched requests).
"""

from __future__ import annotations

import numpy as np

from .conversation import STREAM, Conversation
from .families.base import CACHED, NEW, PAST, STEP_POSITION, STEP_STREAM, streams_step_graph_name
from .patterns import ALL_PATTERNS, MODALITY_NAMES


def batched_turns_available(runtime) -> bool:
    """The bundle and backend have a batched step graph for every pattern."""
    serves = getattr(runtime.backend, "serves", lambda graph: False)
    names = [streams_step_graph_name(p) for p in ALL_PATTERNS]
    return all(g in runtime.bundle.step_graphs and serves(g) for g in names)


def run_turn_batch(pool, items: list[tuple[Conversation, object]]) -> list:
    """[(conversation, validated one-utterance request)] -> per item its TurnPrediction, or the
    exception its turn raised. One step-graph call for the batch (fallback: one per turn)."""
    convs = [c for c, _ in items]
    if len({id(c) for c in convs}) != len(convs) or any(c._pool is not pool or c.mode != STREAM for c in convs):
        raise ValueError("run_turn_batch: each conversation once, streaming, with a row of this pool")
    pattern = items[0][1].pattern
    if any(req.pattern != pattern for _, req in items):
        raise ValueError(f"run_turn_batch: every turn of a batch has pattern {pattern!r}")
    for conv in convs:  # the worker is the only one taking several: no lock-order cycle
        conv._lock.acquire()
    try:
        started, out = [], None
        try:
            for conv, req in items:
                started.append((conv, conv._begin(req)))
            out = _call(pool, convs, [i for _, i in started], pattern)
        except Exception:  # noqa: BLE001 - re-run alone below: each error goes to its own turn
            for conv, i in started:
                conv._avail[i] = False  # the turn did not happen (an eviction did: that is fine)
            out = None
        if out is not None:
            return [_finish(conv, req, i, pattern, out, s) for s, ((conv, req), (_, i))
                    in enumerate(zip(items, started))]
    finally:
        for conv in convs:
            conv._lock.release()
    results = []
    for conv, req in items:
        try:
            results.append(conv.add_request(req))
        except Exception as exc:  # noqa: BLE001 - the caller hands it to the turn's future
            results.append(exc)
    return results


def _call(pool, convs: list[Conversation], index: list[int], pattern: str) -> dict[str, np.ndarray]:
    """The batched step graph on utterance index[s] of each conversation s."""
    rt = convs[0].runtime
    graph = streams_step_graph_name(pattern)
    feeds = {}
    for m in pattern:
        feeds[MODALITY_NAMES[m]] = np.stack([c._features[m][i] for c, i in zip(convs, index)])[:, None]  # [S, 1, d_m]
    if convs[0]._position_fed:
        feeds[STEP_POSITION] = np.array(index, np.int64)  # [S]
    feeds[STEP_STREAM] = np.array([c._row for c in convs], np.int64)  # [S] rows of the pools
    for m in pattern:
        name = MODALITY_NAMES[m]
        for k, p in enumerate(pool.pools[m]):
            feeds[f"{PAST}{name}_{k}"] = p  # [rows, ...] the whole pool, in place: never copied
        feeds[CACHED + name] = np.array([c._cached[m] for c in convs], np.int64)  # [S]
    out = rt.backend.run(graph, feeds)
    for name, value in out.items():
        if not np.isfinite(value).all():  # the one-at-a-time re-run names the turn and raises
            raise ArithmeticError(f"{graph}: NaN/Inf in {name!r}")
    return out


def _finish(conv: Conversation, req, i: int, pattern: str, out: dict, s: int):
    """Row s of the batch's outputs into conversation conv: its cache slots, counts, prediction."""
    for m in pattern:
        conv._write_slots(m, out[NEW + MODALITY_NAMES[m]][s])  # [n, *slot]
    conv.length += 1
    turn, conv.turns = conv.turns, conv.turns + 1
    mine = {k: v[s:s + 1] for k, v in out.items() if not k.startswith(NEW)}  # [1, 1, ...]
    return conv._decode(req, streams_step_graph_name(pattern), mine, turn, i)
