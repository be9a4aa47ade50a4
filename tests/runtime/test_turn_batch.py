"""Batched conversation turns (runtime/turn_batch.py, runtime/cache_pool.py, runtime/streams.py):
turns of many conversations as one batched step-graph call, each turn its own pattern, each result
equal to that conversation's own Conversation.add — fills differing, patterns mixed and switching, windows evicted,
one conversation's turns kept in order, failures reaching their own turn only."""

import numpy as np
import pytest

from anymodal.runtime import ConversationError, OverloadedError, Runtime
from anymodal.runtime.backends.ort import OrtCpuBackend
from anymodal.runtime.cache_pool import CachePool
from anymodal.runtime.conversation import Conversation
from anymodal.runtime.patterns import ALL_PATTERNS
from anymodal.runtime.turn_batch import batched_turns_available, run_turn_batch
from anymodal_testing.helpers import random_turns

TOL = 1e-5
GUARD_S = 60  # failure guard on waits, never a synchronisation


@pytest.fixture(scope="module")
def causal_rt(causal_bundle):
    with Runtime(causal_bundle, backend="ort-cpu", threads=1) as r:
        yield r


def assert_same(got, want, batched: bool):
    fields = ("mode", "turn", "position", "pattern", "present", "label", "score")
    assert {f: getattr(got, f) for f in fields} == {f: getattr(want, f) for f in fields}
    assert got.graph == ("steps" if batched else want.graph)
    assert np.abs(got.probs - want.probs).max() <= TOL
    assert set(got.router_weights) == set(want.router_weights)
    for m, w in want.router_weights.items():
        assert np.abs(got.router_weights[m] - w).max() <= TOL


def _turn(pattern: str, seed: int) -> dict:
    """One turn of `pattern` (random features)."""
    rng = np.random.default_rng(seed)
    while True:
        p, kw = next(random_turns(1, seed=int(rng.integers(1 << 30))))
        if p == pattern:
            return kw


def test_batches_equal_each_conversations_own_turns(causal_rt):
    """Conversations at different fill levels (their own histories and window sizes, some
    evicting during the batch) take turns together, each with its own pattern, the patterns
    changing from batch to batch. Each result and each later turn equals a twin fed by
    Conversation.add."""
    assert batched_turns_available(causal_rt)
    contexts = [64, 3, 3, 2, 64, 2, 64]  # 3, 2: windows fill and are evicted (caches rebuilt)
    pool = CachePool(causal_rt, max_rows=8, max_context=64)
    small = {C: CachePool(causal_rt, max_rows=4, max_context=C) for C in set(contexts) if C != 64}
    convs = [Conversation(causal_rt, C, pool=pool if C == 64 else small[C]) for C in contexts]
    twins = [causal_rt.conversation(max_context=C) for C in contexts]
    for k, (conv, twin) in enumerate(zip(convs, twins)):  # different histories: k + 1 turns alone
        for _, kw in random_turns(k + 1, seed=100 + k):
            assert_same(conv.add(**kw), twin.add(**kw), batched=False)
    rng = np.random.default_rng(8)
    for b in range(8):
        for C in set(contexts):  # one batch per pool (a pool is one window size)
            members = [k for k, c in enumerate(contexts) if c == C]
            pats = [ALL_PATTERNS[j] for j in rng.integers(0, len(ALL_PATTERNS), len(members))]
            if b == 0:
                pats = ["atv"] * len(members)  # one pattern for all, once
            turns = [_turn(p, seed=1000 * b + k) for k, p in zip(members, pats)]
            items = [(convs[k], convs[k].check_turn(**kw)) for k, kw in zip(members, turns)]
            got = run_turn_batch(pool if C == 64 else small[C], items)
            for k, g, kw in zip(members, got, turns):
                assert_same(g, twins[k].add(**kw), batched=True)
    for conv, twin in zip(convs, twins):  # and alone again afterwards: the caches were kept right
        for _, kw in random_turns(4, seed=7):
            assert_same(conv.add(**kw), twin.add(**kw), batched=False)


def test_a_failed_batch_reruns_each_turn_alone(causal_bundle):
    """The batched graph raising: every turn still gets its own Conversation.add result."""
    from anymodal.runtime.bundle import Bundle

    class BatchedFails(OrtCpuBackend):
        def run(self, graph, feeds):
            if graph == "steps":
                raise RuntimeError("batched graph down")
            return super().run(graph, feeds)

    b = Bundle(causal_bundle)
    rt = Runtime.with_backend(b, BatchedFails(b, threads=1))
    pool = CachePool(rt, max_rows=3, max_context=4)
    convs = [Conversation(rt, 4, pool=pool) for _ in range(3)]
    twins = [rt.conversation(max_context=4) for _ in range(3)]
    for t in range(6):  # past the window: evictions in the failed batches too
        turns = [_turn("at", seed=10 * t + k) for k in range(3)]
        got = run_turn_batch(pool, [(c, c.check_turn(**kw)) for c, kw in zip(convs, turns)])
        for g, twin, kw in zip(got, twins, turns):
            assert_same(g, twin.add(**kw), batched=False)


def test_batch_arguments_are_checked(causal_rt):
    pool = CachePool(causal_rt, max_rows=2, max_context=4)
    a, b = Conversation(causal_rt, 4, pool=pool), Conversation(causal_rt, 4, pool=pool)
    req_at, req_a = a.check_turn(**_turn("at", 1)), a.check_turn(**_turn("a", 2))
    with pytest.raises(ValueError, match="with a row of this pool"):
        run_turn_batch(CachePool(causal_rt, max_rows=2, max_context=4), [(a, req_at), (b, req_a)])
    with pytest.raises(ValueError, match="each conversation once"):
        run_turn_batch(pool, [(a, req_at), (a, req_at)])
    with pytest.raises(OverloadedError, match="cache pool full: 2"):
        Conversation(causal_rt, 4, pool=pool)
    with pytest.raises(ConversationError, match="cache pool of 4 slots .* max_context=5"):
        Conversation(causal_rt, 5, pool=pool)
    assert a.length == b.length == 0  # nothing happened


def test_pool_rows_are_views_given_back_on_detach(causal_rt):
    pool = CachePool(causal_rt, max_rows=2, max_context=4)
    conv = Conversation(causal_rt, 4, pool=pool)
    twin = causal_rt.conversation(max_context=4)
    for _, kw in random_turns(3, seed=5):
        conv.add(**kw)
        twin.add(**kw)
    row = conv._row
    assert all(np.shares_memory(c, pool.pools[m][0][row]) for m, cs in conv._cache.items() for c in cs[:1])
    conv.detach()
    assert pool.rows_held == 0 and conv._pool is None
    other = Conversation(causal_rt, 4, pool=pool)  # takes the row back and may overwrite it
    for arrays in pool.pools.values():
        for a in arrays:
            a[other._row] = np.nan
    for _, kw in random_turns(5, seed=6):  # the detached conversation kept its own caches
        assert_same(conv.add(**kw), twin.add(**kw), batched=False)
    with pytest.raises(ConversationError, match="row 1 is not held"):
        pool.release(1)


def test_scheduler_batches_waiting_turns_in_order(causal_rt):
    """Turns submitted while the worker is held: one group, cut into waves (a stream's second
    turn in the next wave), one batched call per wave, patterns mixed; every result equals the
    stream's own Conversation.add, in submission order."""
    streams, turns = 6, 3
    plans = {k: [("atv" if k % 2 else "at", _turn("atv" if k % 2 else "at", 50 * k + t)) for t in range(turns)]
             for k in range(streams)}
    with causal_rt.scheduler(max_batch=64, max_delay_ms=1, max_context=2) as s:  # 2: evictions
        with s._cond:  # the worker cannot take work until every turn is queued
            futures = {k: [s.submit_turn(k, **kw) for _, kw in plan] for k, plan in plans.items()}
        for k, plan in plans.items():
            twin = causal_rt.conversation(max_context=2)
            for t, (_, kw) in enumerate(plan):
                assert_same(futures[k][t].result(GUARD_S), twin.add(**kw), batched=True)
        assert s.stats.jobs == streams * turns
        assert s.stats.calls == turns  # one call per wave, "at" and "atv" turns together


def test_ended_and_evicted_streams_leave_the_pool(causal_rt):
    now = [0.0]
    evicted = []
    with causal_rt.scheduler(max_streams=2, max_context=4, idle_timeout_s=5, clock=lambda: now[0],
                             on_evict=lambda sid, conv: evicted.append((sid, conv))) as s:
        s.submit_turn("a", **_turn("at", 1)).result(GUARD_S)
        s.submit_turn("b", **_turn("at", 2)).result(GUARD_S)
        pool = s.streams._pool
        assert pool.rows_held == 2
        assert s.streams.end("a") and pool.rows_held == 1
        now[0] = 10.0
        assert s.streams.evict_idle() == ["b"] and pool.rows_held == 0
        _, conv = evicted[0]
        twin = causal_rt.conversation(max_context=4)
        twin.add(**_turn("at", 2))
        s.submit_turn("c", **_turn("atv", 3)).result(GUARD_S)  # reuses a row
        s.submit_turn("d", **_turn("atv", 4)).result(GUARD_S)
        for p in ALL_PATTERNS[:3]:  # the evicted conversation goes on, its caches its own
            kw = _turn(p, 9)
            assert_same(conv.add(**kw), twin.add(**kw), batched=False)
