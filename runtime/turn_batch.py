"""Turns of many conversations as ONE batched step-graph call (docs/ARCHITECTURE.md §7b).

    results = run_turn_batch(pool, [(conv, req), ...])   # TurnPrediction or the exception, in order

Each conversation is a different one, streaming, holding a row of `pool` (runtime/cache_pool.py);
each turn has its own pattern. Per conversation the batch does what Conversation.add_request
does — make room (an eviction rebuilds the caches by re-stepping, as alone), write the utterance,
score it, write its key/value slots in place, decode — with one call of the batched step graph
for the scoring: inputs [S, 1, d] features of every modality (zeros where absent), [S] positions,
fill counts and pool rows, [S, 3] presence, the pools themselves in place; outputs [S, ...] of
which row s, cut to s's pattern, is conversation s's. If the call fails
or returns NaN/Inf anywhere, the turns are undone and run one at a time, so each error reaches
only its own turn (as the Scheduler does for batched requests).
"""

from __future__ import annotations

import numpy as np

from .conversation import STREAM, Conversation
from .families.base import CACHED, NEW, PAST, STEP_POSITION, STEP_PRESENT, STEP_STREAM, STREAMS_STEP_GRAPH
from .patterns import MODALITIES, MODALITY_NAMES


def batched_turns_available(runtime) -> bool:
    """The bundle and backend have the batched step graph."""
    serves = getattr(runtime.backend, "serves", lambda graph: False)
    return STREAMS_STEP_GRAPH in runtime.bundle.step_graphs and serves(STREAMS_STEP_GRAPH)


def run_turn_batch(pool, items: list[tuple[Conversation, object]]) -> list:
    """[(conversation, validated one-utterance request)] -> per item its TurnPrediction, or the
    exception its turn raised. One step-graph call for the batch (fallback: one per turn)."""
    convs = [c for c, _ in items]
    if len({id(c) for c in convs}) != len(convs) or any(c._pool is not pool or c.mode != STREAM for c in convs):
        raise ValueError("run_turn_batch: each conversation once, streaming, with a row of this pool")
    for conv in convs:  # the worker is the only one taking several: no lock-order cycle
        conv._lock.acquire()
    try:
        started, out = [], None
        try:
            for conv, req in items:
                started.append((conv, conv._begin(req)))
            out = _call(pool, convs, [i for _, i in started])
        except Exception:  # noqa: BLE001 - re-run alone below: each error goes to its own turn
            for conv, i in started:
                conv._avail[i] = False  # the turn did not happen (an eviction did: that is fine)
            out = None
        if out is not None:
            _write_slots(pool, items, out)
            return [_finish(conv, req, i, out, s) for s, ((conv, req), (_, i))
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


def _call(pool, convs: list[Conversation], index: list[int]) -> dict[str, np.ndarray]:
    """The batched step graph on utterance index[s] of each conversation s."""
    rt = convs[0].runtime
    graph = STREAMS_STEP_GRAPH
    feeds = {}
    for m in MODALITIES:  # absent: the zeros Conversation._begin wrote
        feeds[MODALITY_NAMES[m]] = np.stack([c._features[m][i] for c, i in zip(convs, index)])[:, None]  # [S, 1, d_m]
    if convs[0]._position_fed:
        feeds[STEP_POSITION] = np.array(index, np.int64)  # [S]
    feeds[STEP_STREAM] = np.array([c._row for c in convs], np.int64)  # [S] rows of the pools
    feeds[STEP_PRESENT] = np.stack([c._avail[i] for c, i in zip(convs, index)])  # [S, 3]
    for m in MODALITIES:
        name = MODALITY_NAMES[m]
        for k, p in enumerate(pool.pools[m]):
            feeds[f"{PAST}{name}_{k}"] = p  # [rows, ...] the whole pool, in place: never copied
        feeds[CACHED + name] = np.array([c._cached[m] for c in convs], np.int64)  # [S]
    out = rt.backend.run(graph, feeds)
    for name, value in out.items():  # an absent modality's rows too: they must be finite all the same
        if not np.isfinite(value).all():  # the one-at-a-time re-run names the turn and raises
            raise ArithmeticError(f"{graph}: NaN/Inf in {name!r}")
    return out


def _write_slots(pool, items: list, out: dict) -> None:
    """Each conversation's new slots of the modalities it reported, into its pool row at its
    fill count (per modality and cache one indexed write for the batch); fill counts move on."""
    for m in MODALITIES:
        sel = [s for s, (_, req) in enumerate(items) if m in req.pattern]
        if not sel:
            continue
        convs = [items[s][0] for s in sel]
        pool.write_slots(m, [c._row for c in convs], [c._cached[m] for c in convs],
                         out[NEW + MODALITY_NAMES[m]][sel])  # [S', n, *slot]
        for c in convs:
            c._cached[m] += 1


def _finish(conv: Conversation, req, i: int, out: dict, s: int):
    """Row s of the batch's outputs into conversation conv (its slots already written):
    length, turn count, prediction (decoded from the row cut to its pattern)."""
    pattern = req.pattern
    conv.length += 1
    turn, conv.turns = conv.turns, conv.turns + 1
    mine = {k: v[s:s + 1] for k, v in out.items() if not k.startswith(NEW)}  # [1, 1, ...]
    mine["router_weights"] = mine["router_weights"][:, :, [MODALITIES.index(m) for m in pattern]]  # [1, 1, P, 3]
    return conv._decode(req, STREAMS_STEP_GRAPH, mine, turn, i)
