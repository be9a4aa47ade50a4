"""The Scheduler (runtime/scheduler.py): requests of one graph batched into one call, each result
equal to Runtime.predict alone; bounds, cancellation, bad requests, closing, many threads.

Batches are made deterministic without timing: max_delay_ms is far beyond any test, so a group
runs exactly when it holds max_batch rows (or when close() drains it)."""

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from anymodal.runtime import ModelError, OverloadedError, RequestError, Runtime, SchedulerClosedError
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES
from anymodal.runtime.request_batch import batch_key
from anymodal_testing.helpers import DERL_SHAPES, DIMS

TOL = 1e-5
NEVER_MS = 600_000  # a max_delay no test reaches: groups run when full or drained
GUARD_S = 60  # failure guard on waits, never a synchronisation


@pytest.fixture(scope="module")
def rt(small_bundle):
    with Runtime(small_bundle, backend="ort-cpu", threads=1) as r:
        yield r


@pytest.fixture(scope="module")
def derl_rt(derl_bundle):
    with Runtime(derl_bundle, backend="ort-cpu", threads=1) as r:
        yield r


def momke_request(rng, pattern: str, L: int, B: int | None = None, masked: bool = False) -> dict:
    shape = (L,) if B is None else (B, L)
    kw = {MODALITY_NAMES[m]: rng.standard_normal((*shape, d)).astype(np.float32)
          for m, d in zip(MODALITIES, DIMS) if m in pattern}
    if B is not None:
        kw["lengths"] = rng.integers(2, L + 1, B)
    if masked:  # availability varies per utterance: the masked graph
        present = {m: rng.random(shape) < 0.6 for m in pattern}
        present[pattern[-1]][:] = True  # every utterance keeps one modality
        present[pattern[0]][..., :2] = False, True  # used by one real utterance, not another
        kw["present"] = present
    return kw


def derl_request(rng, pattern: str, masked: bool = False) -> dict:
    kw, present = {}, {}
    for m, (T, d) in zip(MODALITIES, DERL_SHAPES):
        if m in pattern:  # each modality its own length, at most the model's
            n = int(rng.integers(2, T + 1))
            kw[MODALITY_NAMES[m]] = rng.standard_normal((n, d)).astype(np.float32)
            present[m] = rng.random(n) < 0.7
            present[m][0] = True
    if masked:
        kw["present"] = present
    return kw


def assert_same(got, want):
    assert (got.pattern, got.graph, got.backend) == (want.pattern, want.graph, want.backend)
    for name in ("probs", "scores"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None) and (a is None or (a.shape == b.shape and np.abs(a - b).max() <= TOL)), name
    if want.labels is not None:
        assert got.labels.tolist() == want.labels.tolist()
    assert set(got.router_weights) == set(want.router_weights)
    for k, w in want.router_weights.items():
        assert got.router_weights[k].shape == w.shape and np.abs(got.router_weights[k] - w).max() <= TOL, k
    for field in ("present", "lengths", "nonfinite"):
        a, b = getattr(got, field), getattr(want, field)
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in b), field


def run_group(rt, requests: list[dict]) -> list:
    """Submit requests that fill exactly one batch; their predictions, after one graph call."""
    keys = [batch_key(rt.request(**kw)) for kw in requests]
    assert len(set(keys)) == 1, keys  # one group, else it would never fill
    rows = sum(len(kw["lengths"]) if "lengths" in kw else 1 for kw in requests)
    with rt.scheduler(max_batch=rows, max_delay_ms=NEVER_MS) as s:
        futures = [s.submit(**kw) for kw in requests]
        results = [f.result(GUARD_S) for f in futures]
        assert (s.stats.calls, s.stats.fallbacks, s.stats.jobs) == (1, 0, len(requests))
    return results


@pytest.mark.parametrize("graph", [*ALL_PATTERNS, "masked"])
def test_momke_batched_equals_alone(rt, graph):
    rng = np.random.default_rng(ALL_PATTERNS.index(graph) if graph != "masked" else 9)
    masked = graph == "masked"
    pattern = "atv" if masked else graph
    requests = [momke_request(rng, pattern, L) for L in (3, 7, 1, 5)]  # different lengths: padded
    requests += [momke_request(rng, pattern, 6, B=2)]  # a batched request with its own lengths
    if masked:
        requests = [momke_request(rng, pattern, L, masked=True) for L in (4, 7, 3)]
        requests += [momke_request(rng, pattern, 5, B=2, masked=True)]
    for kw, got in zip(requests, run_group(rt, requests)):
        want = rt.predict(**kw)
        assert want.graph == graph
        assert_same(got, want)


@pytest.mark.parametrize("graph", [*ALL_PATTERNS, "masked"])
def test_derl_batched_equals_alone(derl_rt, graph):
    rng = np.random.default_rng(20 + (ALL_PATTERNS.index(graph) if graph != "masked" else 9))
    masked = graph == "masked"
    requests = [derl_request(rng, "atv" if masked else graph, masked) for _ in range(5)]
    for kw, got in zip(requests, run_group(derl_rt, requests)):
        want = derl_rt.predict(**kw)
        assert want.graph == graph
        assert_same(got, want)


def test_groups_by_graph_and_runs_the_oldest_group_first(rt):
    rng = np.random.default_rng(3)
    at = [momke_request(rng, "at", 4) for _ in range(3)]
    v = [momke_request(rng, "v", 2) for _ in range(2)]
    with rt.scheduler(max_batch=3, max_delay_ms=NEVER_MS) as s:
        fv = [s.submit(**kw) for kw in v]  # waits: 2 of 3 rows
        fat = [s.submit(**kw) for kw in at]  # full: runs as one call while v still waits
        for f, kw in zip(fat, at):
            assert_same(f.result(GUARD_S), rt.predict(**kw))
        assert not any(f.done() for f in fv) and s.stats.calls == 1
    for f, kw in zip(fv, v):  # close() drained the v group: one more call
        assert_same(f.result(0), rt.predict(**kw))
    assert s.stats.calls == 2


def test_full_queue_raises_overloaded_and_close_drains(rt):
    rng = np.random.default_rng(4)
    requests = [momke_request(rng, "at", 3) for _ in range(3)]
    s = rt.scheduler(max_batch=16, max_delay_ms=NEVER_MS, max_queue=2)
    futures = [s.submit(**kw) for kw in requests[:2]]
    with pytest.raises(OverloadedError, match="max_queue=2"):
        s.submit(**requests[2])
    assert s.pending == 2
    s.close(drain=True)
    for f, kw in zip(futures, requests):
        assert_same(f.result(0), rt.predict(**kw))
    with pytest.raises(SchedulerClosedError):
        s.submit(**requests[2])


def test_cancelled_future_is_never_run(rt, monkeypatch):
    rng = np.random.default_rng(5)
    requests = [momke_request(rng, "tv", L) for L in (2, 3, 4)]
    ran = []
    infer = rt.infer
    monkeypatch.setattr(rt, "infer", lambda req: ran.append(req.batch) or infer(req))
    s = rt.scheduler(max_batch=16, max_delay_ms=NEVER_MS)
    futures = [s.submit(**kw) for kw in requests]
    assert futures[1].cancel()
    s.close(drain=True)
    with pytest.raises(CancelledError):
        futures[1].result(0)
    assert ran == [2] and s.stats.jobs == 2  # one call of the two others
    for i in (0, 2):
        assert_same(futures[i].result(0), rt.predict(**requests[i]))


@pytest.mark.parametrize("bad, match", [
    (dict(audio=np.zeros((3, DIMS[0] + 1), np.float32)), "feature dim"),
    (dict(audio=np.full((3, DIMS[0]), np.nan, np.float32)), "NaN"),
    (dict(audio=np.zeros((3, DIMS[0]), np.float32), lengths=[5]), "lengths"),
])
def test_bad_request_fails_only_its_own_future(rt, bad, match):
    rng = np.random.default_rng(6)
    good = [momke_request(rng, "a", L) for L in (3, 5)]
    with pytest.raises(RequestError, match=match) as alone:
        rt.predict(**bad)
    with rt.scheduler(max_batch=2, max_delay_ms=NEVER_MS) as s:
        f0 = s.submit(**good[0])
        fbad = s.submit(**bad)
        f1 = s.submit(**good[1])
        exc = fbad.exception(GUARD_S)
        assert type(exc) is RequestError and str(exc) == str(alone.value)
        for f, kw in zip((f0, f1), good):
            assert_same(f.result(GUARD_S), rt.predict(**kw))
        assert s.stats.calls == 1


def test_a_failing_batch_is_rerun_alone_so_the_error_is_its_requests_only(rt, monkeypatch):
    rng = np.random.default_rng(7)
    requests = [momke_request(rng, "av", 4) for _ in range(3)]
    requests[1]["audio"][0, 0] = 123.0  # the marked request's graph run "fails"
    infer = rt.infer

    def failing(req):
        if (req.features["a"][:, 0, 0] == 123.0).any():
            raise ModelError("graph 'av' returned NaN/Inf (simulated)")
        return infer(req)

    monkeypatch.setattr(rt, "infer", failing)
    with rt.scheduler(max_batch=3, max_delay_ms=NEVER_MS) as s:
        futures = [s.submit(**kw) for kw in requests]
        with pytest.raises(ModelError, match="simulated"):
            futures[1].result(GUARD_S)
        for i in (0, 2):
            monkeypatch.setattr(rt, "infer", infer)
            assert_same(futures[i].result(GUARD_S), rt.predict(**requests[i]))
        assert s.stats.fallbacks == 1 and s.stats.calls == 4


def test_close_without_draining_fails_pending_work(rt):
    rng = np.random.default_rng(8)
    s = rt.scheduler(max_batch=16, max_delay_ms=NEVER_MS)
    futures = [s.submit(**momke_request(rng, "t", 2)) for _ in range(3)]
    s.close(drain=False)
    for f in futures:
        with pytest.raises(SchedulerClosedError, match="without draining"):
            f.result(0)
    assert s.stats.jobs == 0


def test_many_threads_submitting(rt):
    """Several threads submit requests of three patterns and random lengths at once; every
    result equals predict alone, and each pattern's 16 requests ran as two calls of 8."""
    threads, per_thread = 4, 12
    work = [[momke_request(np.random.default_rng(100 * k + i), ALL_PATTERNS[(k + i) % 3], 1 + (i % 4))
             for i in range(per_thread)] for k in range(threads)]
    results: list[list] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    with rt.scheduler(max_batch=8, max_delay_ms=NEVER_MS) as s:
        def client(k):
            start.wait(GUARD_S)
            results[k] = [s.submit(**kw) for kw in work[k]]

        pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(GUARD_S)
        for k in range(threads):
            for f, kw in zip(results[k], work[k]):
                assert_same(f.result(GUARD_S), rt.predict(**kw))
        assert s.stats.jobs == threads * per_thread and s.stats.fallbacks == 0
        assert s.stats.calls == 6


def test_bad_scheduler_arguments_are_request_errors(rt):
    with pytest.raises(RequestError, match="max_batch"):
        rt.scheduler(max_batch=0)
    with pytest.raises(RequestError, match="max_delay_ms"):
        rt.scheduler(max_delay_ms=-1)


def test_a_lone_request_runs_after_max_delay(rt):
    """No batch-mate comes: the request still runs once it has waited max_delay_ms."""
    kw = momke_request(np.random.default_rng(11), "atv", 3)
    with rt.scheduler(max_batch=16, max_delay_ms=1) as s:
        assert_same(s.submit(**kw).result(GUARD_S), rt.predict(**kw))
        assert s.stats.calls == 1


def test_a_group_pending_behind_another_patterns_call_runs_when_due(rt):
    """The delay restarts at a call's end only for that call's own key (whose callers may send
    batch-mates now): two patterns submitted together, as one Triton batch, run one straight
    after the other, not max_delay_ms apart."""
    rng = np.random.default_rng(12)
    kws = {p: momke_request(rng, p, 3) for p in ("a", "t")}
    done: dict[str, float] = {}
    delay_s = 1.0
    with rt.scheduler(max_batch=16, max_delay_ms=delay_s * 1e3) as s:
        futures = {p: s.submit(**kw) for p, kw in kws.items()}
        for p, f in futures.items():
            f.add_done_callback(lambda _f, p=p: done.setdefault(p, time.monotonic()))
        for p, f in futures.items():
            assert_same(f.result(GUARD_S), rt.predict(**kws[p]))
    assert done["t"] - done["a"] < 0.6 * delay_s  # 't' was due when 'a''s call ended
