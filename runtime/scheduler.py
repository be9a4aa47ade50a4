"""Many callers, few graph calls: a thread-safe queue that groups pending work by graph
(docs/ARCHITECTURE.md §7b).

    with rt.scheduler(max_batch=16, max_delay_ms=2, max_queue=256) as s:
        fut = s.submit(audio=a, text=t)            # concurrent.futures.Future[Prediction]
        fut.result()                               # == rt.predict(audio=a, text=t)
        turn = s.submit_turn("call-17", audio=a_i) # Future[TurnPrediction] (runtime/streams.py)
        s.submit_turn("call-18", audio=a, start=True, end=False)  # explicit opening / ending

One worker thread runs the graphs (the backend's intra-op threads do the parallel work). Jobs
are grouped by batch key (graph, pattern and given modalities); a group runs as ONE call of up
to `max_batch` batch rows, oldest first (runtime/request_batch.py), as soon as it is full, or
when the oldest pending job has waited `max_delay_ms` (then the oldest job's group runs). For a
job of the key the worker's last call ran, the wait counts from that call's end if it arrived
before: it could not have run earlier anyway, and the callers that call just answered may send
batch-mates, so closed-loop callers do not split into two half-batches that alternate for ever.
Other keys' jobs gain nothing from the wait (e.g. the patterns of one Triton batch) and run as due.
Requests are validated at submit with predict's own checks: a bad one gets its RequestError
on its own future and never reaches a batch. A batch whose call
fails is re-run one request at a time, so an error (e.g. ModelError) reaches only its request.
A cancelled future is skipped. The precision is the Runtime's: one Scheduler, one variant.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from .errors import OverloadedError, RequestError, SchedulerClosedError
from .patterns import MODALITIES, MODALITY_NAMES
from .request_batch import batch_key, merge_requests, split_decoded
from .streams import TURN_KEY, Streams  # the conversation-turn half

TURN_ARGS = {"stream_id", *MODALITY_NAMES.values(), "nonfinite", "start", "end"}  # submit_turns' keys


@dataclass
class Job:
    key: tuple  # jobs of one key can run as one call
    rows: int  # batch rows it adds to a call
    future: Future
    payload: object  # a Request, or (Stream, Request) for a conversation turn (runtime/streams.py)
    since: float = field(default_factory=time.monotonic)


@dataclass
class SchedulerStats:
    calls: int = 0  # graph calls made for batches (a fallback re-run counts each call)
    jobs: int = 0  # jobs run (cancelled ones excluded)
    fallbacks: int = 0  # batches re-run one job at a time after their call failed

    @property
    def mean_batch(self) -> float:
        return self.jobs / self.calls if self.calls else 0.0


class Scheduler:
    def __init__(self, runtime, max_batch: int = 16, max_delay_ms: float = 2, max_queue: int = 256,
                 max_streams: int = 64, max_context: int = 64, idle_timeout_s: float | None = None,
                 on_evict=None, clock=time.monotonic):
        for name, value, low in (("max_batch", max_batch, 1), ("max_queue", max_queue, 1),
                                 ("max_streams", max_streams, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RequestError(f"{name}: expected an int >= {low}, got {value!r}")
        if not max_delay_ms >= 0:
            raise RequestError(f"max_delay_ms: expected a number >= 0, got {max_delay_ms!r}")
        self.runtime = runtime
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_ms / 1000, max_queue
        self.stats = SchedulerStats()
        self._pending: deque[Job] = deque()  # arrival order
        self._rows: dict[tuple, int] = {}  # key -> batch rows pending
        self._cond = threading.Condition()
        self._closed = False
        self._drain = True
        self._last_key, self._free_since = None, time.monotonic()  # the worker's last call: its key, its end
        self.streams = Streams(self, max_streams, max_context, idle_timeout_s, on_evict, clock)
        self._worker = threading.Thread(target=self._loop, name="anymodal-scheduler", daemon=True)
        self._worker.start()

    # -- submitting ------------------------------------------------------------------------
    def submit(self, audio=None, text=None, visual=None, *, present=None, lengths=None,
               nonfinite: str = "error") -> Future:
        """A Future of what Runtime.predict would return for these arguments. A bad request's
        future holds predict's RequestError; OverloadedError when max_queue jobs are pending;
        SchedulerClosedError after close()."""
        future: Future = Future()
        try:
            req = self.runtime.request(audio, text, visual, present=present, lengths=lengths, nonfinite=nonfinite)
        except RequestError as exc:  # only this caller's future fails
            self._check_open()
            future.set_exception(exc)
            return future
        self.enqueue(Job(("request", *batch_key(req)), req.batch, future, req))
        return future

    def submit_turn(self, stream_id, audio=None, text=None, visual=None, *, nonfinite: str = "error",
                    start: bool | None = None, end: bool = False) -> Future:
        """A Future of what the stream's Conversation.add would return (runtime/streams.py).
        start None: the stream opens on its first turn; True: this turn opens a new stream;
        False: it must continue an open one (else StreamClosedError). end: the stream ends
        after this turn (its state freed once the turn is done)."""
        return self.streams.submit(stream_id, dict(zip(MODALITIES, (audio, text, visual))), nonfinite, start, end)

    def submit_turns(self, turns: list[dict]) -> list[Future]:
        """Several turns at once (submit_turn's keyword arguments each, stream_id included), e.g.
        one batch of Triton's sequence batcher: all enter the queue before the worker takes any;
        every error, OverloadedError included, is the future of its own turn."""
        for t in turns:
            unknown = sorted(set(t) - TURN_ARGS)
            if unknown or "stream_id" not in t:
                raise RequestError(f"submit_turns: each turn is a dict of {', '.join(sorted(TURN_ARGS))} "
                                   f"(stream_id required); got {unknown[0] if unknown else 'no stream_id'!r}")
        return self.streams.submit_many([
            {"stream_id": t["stream_id"], "arrays": {m: t.get(MODALITY_NAMES[m]) for m in MODALITIES},
             "nonfinite": t.get("nonfinite", "error"), "start": t.get("start"), "end": t.get("end", False)}
            for t in turns])

    def enqueue(self, job: Job) -> None:
        with self._cond:
            self._check_open()
            if len(self._pending) >= self.max_queue:
                raise OverloadedError(f"scheduler queue full: {len(self._pending)} jobs pending "
                                      f"(max_queue={self.max_queue}); retry later or raise max_queue")
            self._pending.append(job)
            self._rows[job.key] = self._rows.get(job.key, 0) + job.rows
            self._cond.notify()

    def _check_open(self) -> None:
        if self._closed:
            raise SchedulerClosedError("the scheduler is closed: it accepts no more work")

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- the worker ------------------------------------------------------------------------
    def _next_group(self) -> tuple[list[Job] | None, list]:
        """Wait for work: (the oldest job's group once full or due, streams evicted as idle
        meanwhile). Group None: closed and done; [] : only evictions to report."""
        with self._cond:
            while True:
                evicted = self.streams.pop_idle()
                if self._closed and (not self._drain or not self._pending):
                    return None, evicted
                if not self._pending:
                    if evicted:
                        return [], evicted
                    self._cond.wait(self.streams.wait_s())
                    continue
                oldest = self._pending[0]
                since = max(oldest.since, self._free_since) if oldest.key == self._last_key else oldest.since
                due = since + self.max_delay_s - time.monotonic()
                if self._closed or due <= 0:
                    return self._take(oldest.key), evicted
                # a full group never waits for the oldest one's delay; turns wait for batch-mates
                # only while some open stream has none pending (its next turn may be on its way)
                full = next((k for k, rows in self._rows.items()
                             if rows >= self.max_batch or (k == TURN_KEY and self.streams.all_waiting())), None)
                if full is not None:
                    return self._take(full), evicted
                if evicted:
                    return [], evicted
                self._cond.wait(due)

    def _take(self, key: tuple) -> list[Job]:
        """Up to max_batch rows of the key's jobs, oldest first (always at least one job)."""
        group, rows, keep = [], 0, deque()
        while self._pending:
            job = self._pending.popleft()
            if job.key == key and (not group or rows + job.rows <= self.max_batch):
                group.append(job)
                rows += job.rows
            else:
                keep.append(job)
        self._pending = keep
        self._rows[key] -= rows
        if not self._rows[key]:
            del self._rows[key]
        return group

    def _loop(self) -> None:
        while True:
            group, evicted = self._next_group()
            self.streams.notify(evicted)  # callbacks outside the lock
            if group is None:
                break
            live = [j for j in group if j.future.set_running_or_notify_cancel()]  # cancelled: never run
            if not live:
                continue
            try:
                if group[0].key[0] == "request":
                    self._run_requests(live)
                else:
                    self.streams.run(live)
            except BaseException as exc:  # noqa: BLE001 - no future may be left waiting
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
            self._last_key, self._free_since = group[0].key, time.monotonic()
        self._fail_pending()

    def _run_requests(self, jobs: list[Job]) -> None:
        rt = self.runtime
        reqs = [j.payload for j in jobs]
        self.stats.jobs += len(jobs)
        if len(jobs) > 1:
            try:
                self.stats.calls += 1
                decoded = split_decoded(rt.infer(merge_requests(reqs)), reqs)
            except Exception:  # noqa: BLE001 - re-run alone: each error goes to its own request
                self.stats.fallbacks += 1
            else:
                for job, req, dec in zip(jobs, reqs, decoded):
                    job.future.set_result(rt.prediction(req, dec))
                return
        for job, req in zip(jobs, reqs):
            self.stats.calls += 1
            try:
                job.future.set_result(rt.run(req))
            except Exception as exc:  # noqa: BLE001 - the caller gets it from its future
                job.future.set_exception(exc)

    def _fail_pending(self) -> None:
        with self._cond:
            jobs, self._pending = list(self._pending), deque()
            self._rows.clear()
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(SchedulerClosedError("the scheduler was closed without draining "
                                                              "before this job ran"))

    # -- closing ---------------------------------------------------------------------------
    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Accept no more work. drain=True: run every pending job first; False: pending jobs
        fail with SchedulerClosedError (the call in flight, if any, completes). Waits for the
        worker (at most `timeout` seconds)."""
        with self._cond:
            self._closed, self._drain = True, self._drain and drain
            self._cond.notify_all()
        self._worker.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
