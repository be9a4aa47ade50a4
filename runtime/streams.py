"""The Scheduler's live conversations: one Conversation per stream id, turns kept in order,
idle streams evicted, at most `max_streams` of them (memory bound: max_streams × one stream).

    fut = scheduler.submit_turn("call-17", audio=a_i, text=t_i)   # Future[TurnPrediction]

Turns are NOT batched across streams: each turn runs its stream's step graph at batch 1 (as
Conversation.add does). The step graphs take one stream — features [1, 1, d], caches without a
stream axis, one `cached` count — so turns of different streams cannot share a call without
re-exporting the step graphs with a stream axis and per-stream fill counts (not done; see
docs/ARCHITECTURE.md §7b). What the scheduler gives turns today: submit-time validation (a bad
turn fails its own future only), one FIFO group for every turn so that a stream's turns run in
submission order (at once: no max_delay_ms wait, there is no batch to fill), bounded queue and stream table, idle eviction with a callback.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from .conversation import Conversation
from .errors import OverloadedError, RequestError
from .patterns import MODALITY_NAMES

TURN_KEY = ("turn",)  # one group: turns run in submission order, so each stream's stay in order


@dataclass
class Stream:
    conversation: Conversation
    last_active: float  # the Streams clock when its last turn finished (or it was opened)
    pending: int = 0  # turns submitted and not done


class Streams:
    def __init__(self, scheduler, max_streams: int, max_context: int, idle_timeout_s: float | None,
                 on_evict, clock):
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise RequestError(f"idle_timeout_s: expected a number > 0 or None, got {idle_timeout_s!r}")
        self._scheduler, self._lock = scheduler, scheduler._cond  # one (reentrant) lock for both
        self.max_streams, self.max_context = max_streams, max_context
        self.idle_timeout_s, self.on_evict, self._clock = idle_timeout_s, on_evict, clock
        self._table: dict[object, Stream] = {}
        self._stream_bytes: int | None = None
        self.callback_errors: deque[Exception] = deque(maxlen=16)  # what on_evict raised (kept, not lost)

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)

    def __contains__(self, stream_id) -> bool:
        with self._lock:
            return stream_id in self._table

    @property
    def memory_bound_bytes(self) -> int:
        """max_streams × the bytes one stream's Conversation preallocates (Conversation.memory_bytes
        at max_context: features, availability and, streaming, its key/value caches)."""
        if self._stream_bytes is None:
            self._stream_bytes = Conversation(self._scheduler.runtime, self.max_context).memory_bytes
        return self.max_streams * self._stream_bytes

    def memory_bytes(self) -> int:
        """Bytes the open streams hold now."""
        with self._lock:
            return sum(s.conversation.memory_bytes for s in self._table.values())

    # -- submitting --------------------------------------------------------------------------
    def submit(self, stream_id, arrays: dict, nonfinite: str) -> Future:
        """arrays: {modality letter: [dim] or None}. Opens the stream on its first turn
        (OverloadedError when max_streams are open; ConversationError for a family without
        conversations). A bad turn fails its own future with Conversation.add's RequestError."""
        from .scheduler import Job

        future: Future = Future()
        with self._lock:
            self._scheduler._check_open()
            stream, opened = self._table.get(stream_id), False
            if stream is None:
                if len(self._table) >= self.max_streams:
                    raise OverloadedError(f"{len(self._table)} streams open (max_streams={self.max_streams}); "
                                          "end or let idle streams expire, or raise max_streams")
                stream = Stream(Conversation(self._scheduler.runtime, self.max_context), self._clock())
                self._table[stream_id] = stream
                opened = True
            try:
                req = stream.conversation.check_turn(**{MODALITY_NAMES[m]: x for m, x in arrays.items()},
                                                     nonfinite=nonfinite)
            except RequestError as exc:
                if opened:  # a stream whose first turn was refused was never opened
                    del self._table[stream_id]
                future.set_exception(exc)
                return future
            stream.pending += 1
            try:
                self._scheduler.enqueue(Job(TURN_KEY, 1, future, (stream, req)))
            except BaseException:
                stream.pending -= 1
                if opened:
                    del self._table[stream_id]
                raise
        future.add_done_callback(lambda _f: self._finished(stream))  # done, failed or cancelled
        return future

    def _finished(self, stream: Stream) -> None:
        with self._lock:
            stream.pending -= 1
            stream.last_active = self._clock()

    def end(self, stream_id) -> bool:
        """Close a stream now (turns already submitted still run). False if it was not open."""
        with self._lock:
            return self._table.pop(stream_id, None) is not None

    # -- running (the scheduler's worker) ----------------------------------------------------
    def run(self, jobs: list) -> None:
        """Each turn on its stream's Conversation, in submission order (one step graph call each)."""
        stats = self._scheduler.stats
        for job in jobs:
            stream, req = job.payload
            stats.jobs += 1
            stats.calls += 1
            try:
                job.future.set_result(stream.conversation.add_request(req))
            except Exception as exc:  # noqa: BLE001 - the caller gets it from its future
                job.future.set_exception(exc)

    # -- idle eviction -----------------------------------------------------------------------
    def wait_s(self) -> float | None:
        """How long the idle worker may sleep before an idle stream could be due (None: forever)."""
        return self.idle_timeout_s

    def pop_idle(self) -> list[tuple[object, Conversation]]:
        """Remove the streams idle for idle_timeout_s (no turn pending); the caller notifies."""
        if self.idle_timeout_s is None:
            return []
        with self._lock:
            now = self._clock()
            idle = [sid for sid, s in self._table.items()
                    if s.pending == 0 and now - s.last_active >= self.idle_timeout_s]
            return [(sid, self._table.pop(sid).conversation) for sid in idle]

    def notify(self, evicted: list[tuple[object, Conversation]]) -> None:
        """Call on_evict(stream_id, conversation) for each, outside the scheduler's lock."""
        for sid, conv in evicted:
            if self.on_evict is None:
                continue
            try:
                self.on_evict(sid, conv)
            except Exception as exc:  # noqa: BLE001 - a callback must not stop the worker
                self.callback_errors.append(exc)

    def evict_idle(self) -> list:
        """Evict idle streams now (the worker also does it whenever it wakes); their ids."""
        evicted = self.pop_idle()
        self.notify(evicted)
        return [sid for sid, _ in evicted]
