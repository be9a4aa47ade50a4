"""Conversation turns through the Scheduler (runtime/streams.py): each stream's turns equal its own
Conversation.add, in order, eviction included; bounds, bad turns, idle streams, memory."""

import threading

import numpy as np
import pytest

from anymodal.runtime import ConversationError, OverloadedError, RequestError, Runtime, StreamClosedError
from anymodal_testing.helpers import DIMS, random_turns

TOL = 1e-5
GUARD_S = 60  # failure guard on waits, never a synchronisation


@pytest.fixture(scope="module")
def causal_rt(causal_bundle):
    with Runtime(causal_bundle, backend="ort-cpu", threads=1) as r:
        yield r


def assert_same_turn(got, want):
    """got (through the Scheduler: alone or in a batched call) equals want (Conversation.add)."""
    fields = ("mode", "turn", "position", "pattern", "present", "label", "score")
    assert {f: getattr(got, f) for f in fields} == {f: getattr(want, f) for f in fields}
    assert got.graph in (want.graph, "steps")  # the single or the batched step graph
    assert np.abs(got.probs - want.probs).max() <= TOL
    assert set(got.router_weights) == set(want.router_weights)
    for m, w in want.router_weights.items():
        assert np.abs(got.router_weights[m] - w).max() <= TOL


@pytest.mark.parametrize("max_context", [3, 64])  # 3: windows evicted and caches rebuilt
def test_interleaved_streams_equal_their_own_conversations(causal_rt, max_context):
    """Several streams' turns submitted interleaved, without waiting: every result equals that
    stream's own Conversation.add, turn numbers in submission order."""
    streams, turns = 5, 9
    plans = {f"s{k}": list(random_turns(turns, seed=40 + k)) for k in range(streams)}
    with causal_rt.scheduler(max_batch=4, max_delay_ms=1, max_context=max_context) as s:
        futures = {sid: [] for sid in plans}
        for t in range(turns):
            for sid, plan in plans.items():
                futures[sid].append(s.submit_turn(sid, **plan[t][1]))
        for sid, plan in plans.items():
            conv = causal_rt.conversation(max_context=max_context)
            for t, (pattern, kw) in enumerate(plan):
                got = futures[sid][t].result(GUARD_S)
                assert got.mode == "stream" and got.turn == t and got.pattern == pattern
                assert_same_turn(got, conv.add(**kw))
        assert len(s.streams) == streams


def test_turns_from_many_threads_keep_each_streams_order(causal_rt):
    threads, turns = 4, 8
    plans = [list(random_turns(turns, seed=60 + k)) for k in range(threads)]
    got: list[list] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    with causal_rt.scheduler(max_delay_ms=1) as s:
        def client(k):
            start.wait(GUARD_S)
            got[k] = [s.submit_turn(k, **kw) for _, kw in plans[k]]

        pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(GUARD_S)
        for k in range(threads):
            conv = causal_rt.conversation()
            for f, (_, kw) in zip(got[k], plans[k]):
                assert_same_turn(f.result(GUARD_S), conv.add(**kw))


def test_a_bad_turn_fails_only_its_own_future(causal_rt):
    plan = list(random_turns(3, seed=7))
    with causal_rt.scheduler(max_delay_ms=1) as s:
        first = s.submit_turn("x", **plan[0][1])
        bad = s.submit_turn("x", audio=np.zeros(DIMS[0] + 1, np.float32))
        with pytest.raises(RequestError, match="feature dim") as alone:
            causal_rt.conversation().add(audio=np.zeros(DIMS[0] + 1, np.float32))
        exc = bad.exception(GUARD_S)
        assert type(exc) is RequestError and str(exc) == str(alone.value)
        rest = [s.submit_turn("x", **kw) for _, kw in plan[1:]]
        conv = causal_rt.conversation()
        for f, (_, kw) in zip([first, *rest], plan):  # the refused turn left no trace
            assert_same_turn(f.result(GUARD_S), conv.add(**kw))
        assert s.submit_turn("new", audio=np.zeros(3, np.float32)).exception(GUARD_S) is not None
        assert "new" not in s.streams  # a stream whose first turn was refused never opened


def test_max_streams_is_a_bound(causal_rt):
    (_, kw), = random_turns(1, seed=8)
    with causal_rt.scheduler(max_delay_ms=1, max_streams=2, max_context=4) as s:
        for sid in ("a", "b"):
            s.submit_turn(sid, **kw).result(GUARD_S)
        with pytest.raises(OverloadedError, match="max_streams=2"):
            s.submit_turn("c", **kw)
        s.submit_turn("a", **kw).result(GUARD_S)  # open streams go on
        assert s.streams.end("a") and not s.streams.end("a")
        s.submit_turn("c", **kw).result(GUARD_S)
        one = causal_rt.conversation(max_context=4).memory_bytes
        assert s.streams.memory_bound_bytes == 2 * one
        assert s.streams.memory_bytes() == 2 * one <= s.streams.memory_bound_bytes


def test_idle_streams_are_evicted_with_a_callback(causal_rt):
    """Eviction follows the scheduler's clock (a fake one here): only streams idle for
    idle_timeout_s with no pending turn go, each reported once; a later turn starts afresh."""
    now = [0.0]
    evicted, reported = [], threading.Event()

    def on_evict(sid, conv):
        evicted.append((sid, conv.turns))
        reported.set()

    plan = list(random_turns(2, seed=9))
    with causal_rt.scheduler(max_delay_ms=1, idle_timeout_s=10, clock=lambda: now[0], on_evict=on_evict) as s:
        s.submit_turn("old", **plan[0][1]).result(GUARD_S)
        now[0] = 6.0
        s.submit_turn("new", **plan[0][1]).result(GUARD_S)
        assert s.streams.evict_idle() == [] and not evicted  # 6 s idle of 10
        now[0] = 12.0
        s.streams.evict_idle()  # here or by the worker when it wakes: reported once either way
        assert reported.wait(GUARD_S) and evicted == [("old", 1)]
        assert "old" not in s.streams and "new" in s.streams
        p = s.submit_turn("old", **plan[1][1]).result(GUARD_S)
        assert p.turn == 0  # a new conversation


def test_the_worker_evicts_idle_streams_by_itself(causal_rt):
    done = threading.Event()
    (_, kw), = random_turns(1, seed=10)
    with causal_rt.scheduler(max_delay_ms=1, idle_timeout_s=0.01,
                             on_evict=lambda sid, conv: done.set()) as s:
        s.submit_turn("quiet", **kw).result(GUARD_S)
        assert done.wait(GUARD_S) and "quiet" not in s.streams


def test_families_without_conversations_refuse_turns(derl_bundle):
    with Runtime(derl_bundle, backend="ort-cpu") as rt, rt.scheduler() as s:
        with pytest.raises(ConversationError, match="derl model cannot"):
            s.submit_turn("x", text=np.zeros((1, 32), np.float32))
        assert len(s.streams) == 0


def test_turns_do_not_wait_for_batch_mates(causal_rt):
    """Turns run one by one, so a lone turn runs at once, not after max_delay_ms (far beyond
    the guard here), even while a request waits for its own batch-mates."""
    (_, kw), = random_turns(1, seed=12)
    with causal_rt.scheduler(max_delay_ms=600_000) as s:
        waiting = s.submit(audio=np.zeros((2, DIMS[0]), np.float32))
        assert s.submit_turn("x", **kw).result(GUARD_S).turn == 0
        assert not waiting.done()
    assert waiting.result(0).graph == "a"  # drained by close()


def test_start_and_end_flags_open_continue_and_free_streams(causal_rt):
    """Explicit opening and ending (what Triton's sequence START/END map to): a turn that must
    continue a stream fails alone with a StreamClosedError naming why; end frees the state;
    start on an open id begins a new conversation."""
    plan = list(random_turns(4, seed=13))
    with causal_rt.scheduler(max_delay_ms=1, max_context=8) as s:
        with pytest.raises(StreamClosedError, match="'x' is not open \\(never started\\)"):
            s.submit_turn("x", **plan[0][1], start=False).result(GUARD_S)
        assert "x" not in s.streams
        conv = causal_rt.conversation(max_context=8)
        assert_same_turn(s.submit_turn("x", **plan[0][1], start=True).result(GUARD_S), conv.add(**plan[0][1]))
        assert_same_turn(s.submit_turn("x", **plan[1][1], start=False, end=True).result(GUARD_S),
                         conv.add(**plan[1][1]))
        assert "x" not in s.streams and s.streams.memory_bytes() == 0
        with pytest.raises(StreamClosedError, match="\\(ended\\)"):
            s.submit_turn("x", **plan[2][1], start=False).result(GUARD_S)
        s.submit_turn("y", **plan[0][1], start=True).result(GUARD_S)
        assert s.submit_turn("y", **plan[1][1], start=True).result(GUARD_S).turn == 0  # a new conversation
        with pytest.raises(RequestError):  # a refused first turn: never opened, and said so later
            s.submit_turn("z", audio=np.zeros(DIMS[0] + 1, np.float32), start=True).result(GUARD_S)
        with pytest.raises(StreamClosedError, match="first turn was refused"):
            s.submit_turn("z", **plan[0][1], start=False).result(GUARD_S)
        with pytest.raises(RequestError):  # a refused last turn still ends its stream
            s.submit_turn("y", audio=np.zeros(DIMS[0] + 1, np.float32), end=True).result(GUARD_S)
        assert len(s.streams) == 0


def test_turns_submitted_together_run_as_one_call(causal_rt):
    """submit_turns: a batch of turns of different streams enters the queue at once (the worker
    never takes part of it), each error its own; equal to each stream's Conversation.add."""
    plans = {f"s{k}": list(random_turns(2, seed=70 + k)) for k in range(4)}
    with causal_rt.scheduler(max_batch=8, max_delay_ms=0) as s:
        for t in range(2):
            calls = s.stats.calls
            turns = [dict(kw, stream_id=sid, start=t == 0) for sid, plan in plans.items() for kw in [plan[t][1]]]
            turns.append({"stream_id": "ghost", "audio": np.zeros(DIMS[0], np.float32), "start": False})
            futures = s.submit_turns(turns)
            for f in futures[:4]:
                f.result(GUARD_S)
            assert s.stats.calls == calls + 1  # the four streams' turns: one batched call
            with pytest.raises(StreamClosedError, match="'ghost'"):
                futures[4].result(GUARD_S)
        for k, (sid, plan) in enumerate(plans.items()):
            conv = causal_rt.conversation()
            want = [conv.add(**kw) for _, kw in plan]
            assert_same_turn(futures[k].result(0), want[1])
        with pytest.raises(RequestError, match="'audo'"):
            s.submit_turns([{"stream_id": "s0", "audo": None}])


def test_a_full_table_reclaims_the_longest_idle_stream_for_a_start(causal_rt):
    now = [0.0]
    evicted = []
    (_, kw), = random_turns(1, seed=14)
    with causal_rt.scheduler(max_delay_ms=1, max_streams=2, clock=lambda: now[0],
                             on_evict=lambda sid, conv: evicted.append(sid)) as s:
        for sid in ("old", "recent"):
            s.submit_turn(sid, **kw, start=True).result(GUARD_S)
            now[0] += 1
        with pytest.raises(OverloadedError):  # an implicit opening never reclaims
            s.submit_turn("new", **kw)
        s.submit_turn("new", **kw, start=True).result(GUARD_S)
        assert evicted == ["old"] and set(s.streams._table) == {"recent", "new"}
        with pytest.raises(StreamClosedError, match="stream table was full"):
            s.submit_turn("old", **kw, start=False).result(GUARD_S)


def test_a_turn_that_arrived_during_a_call_waits_for_the_streams_that_call_answers(causal_rt, monkeypatch):
    """Closed-loop callers must not split into two half-batches that alternate for ever: B's turn
    arrives while A's turn runs and has waited past max_delay_ms when that call ends, yet it
    still waits (max_delay_ms from the call's end) for A's next turn and runs with it as one
    batched call, instead of alone at once."""
    plan = list(random_turns(3, seed=15))
    delay_s = 0.3
    with causal_rt.scheduler(max_delay_ms=delay_s * 1e3) as s:
        for f in s.submit_turns([dict(plan[0][1], stream_id=sid) for sid in "ab"]):
            f.result(GUARD_S)  # both streams open, nothing pending
        backend, run, b_turn = causal_rt.backend, causal_rt.backend.run, []

        def slow_run(graph, feeds):  # A's lone turn: B's turn arrives, then the call outlasts the delay
            if not b_turn:
                b_turn.append(s.submit_turn("b", **plan[1][1]))
                threading.Event().wait(delay_s + 0.1)
            return run(graph, feeds)

        monkeypatch.setattr(backend, "run", slow_run)
        assert s.submit_turn("a", **plan[1][1]).result(GUARD_S).graph != "steps"  # alone: B came later
        monkeypatch.setattr(backend, "run", run)
        a_next = s.submit_turn("a", **plan[2][1])
        assert b_turn[0].result(GUARD_S).graph == a_next.result(GUARD_S).graph == "steps"  # one batched call
