"""The Scheduler's live conversations: one Conversation per stream id, turns kept in order,
idle streams evicted, at most `max_streams` of them (memory bound: max_streams × one stream).

    fut = scheduler.submit_turn("call-17", audio=a_i, text=t_i)   # Future[TurnPrediction]

Turns of many streams run as ONE batched step-graph call (runtime/turn_batch.py) when the
bundle has the batched step graph: the streams' key/value caches live in one CachePool (a row
per open stream, fed in place), each turn keeps its own pattern, each result equals the
stream's own Conversation.add. A group of pending turns (submission order) is cut into waves —
a stream's k-th turn of the group goes to wave k, so its turns stay in order — and each wave
is one call (a wave of one turn runs the single-stream step graph of its pattern). Bundles or
backends without the batched step graph run each turn alone. Also: submit-time validation (a bad turn
fails its own future only), bounded queue and stream table, idle eviction with a callback (an
evicted or ended stream's caches leave the pool: the Conversation stays usable).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass

from .cache_pool import CachePool
from .conversation import STREAM, Conversation
from .errors import AnymodalError, OverloadedError, RequestError, StreamClosedError
from .patterns import MODALITY_NAMES
from .turn_batch import batched_turns_available, run_turn_batch

TURN_KEY = ("turn",)  # one group: turns run in submission order, so each stream's stay in order
GONE_KEPT = 1024  # closed streams whose reason a late turn's StreamClosedError can name


@dataclass
class Stream:
    conversation: Conversation
    last_active: float  # the Streams clock when its last turn finished (or it was opened)
    pending: int = 0  # turns submitted and not done
    ended: bool = False  # end() was called: its caches leave the pool once no turn is pending


class Streams:
    def __init__(self, scheduler, max_streams: int, max_context: int, idle_timeout_s: float | None,
                 on_evict, clock):
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise RequestError(f"idle_timeout_s: expected a number > 0 or None, got {idle_timeout_s!r}")
        self._scheduler, self._lock = scheduler, scheduler._cond  # one (reentrant) lock for both
        self.max_streams, self.max_context = max_streams, max_context
        self.idle_timeout_s, self.on_evict, self._clock = idle_timeout_s, on_evict, clock
        self._table: dict[object, Stream] = {}
        self._pool: CachePool | None = None  # made with the first streaming conversation
        self._batched = batched_turns_available(scheduler.runtime)
        self._stream_bytes: int | None = None
        self.callback_errors: deque[Exception] = deque(maxlen=16)  # what on_evict raised (kept, not lost)
        self._gone: OrderedDict[object, str] = OrderedDict()  # stream id -> why it closed (newest last)

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)

    def __contains__(self, stream_id) -> bool:
        with self._lock:
            return stream_id in self._table

    @property
    def batched(self) -> bool:
        """Whether turns of different streams share step-graph calls (batched step graphs)."""
        return self._batched

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
    def submit(self, stream_id, arrays: dict, nonfinite: str, start: bool | None = None,
               end: bool = False) -> Future:
        """arrays: {modality letter: [dim] or None}. start None: opens the stream on its first
        turn; True: this turn opens a new stream (one open under that id ends first); False: it
        continues an open stream, else its future holds a StreamClosedError naming why. end: the
        stream ends after this turn. OverloadedError when max_streams are open (a start=True turn
        first reclaims the longest-idle stream); ConversationError for a family without
        conversations. A bad turn fails its own future with Conversation.add's RequestError."""
        evicted: list = []
        try:
            return self._submit(stream_id, arrays, nonfinite, start, end, evicted)
        finally:
            self.notify(evicted)

    def submit_many(self, turns: list[dict]) -> list[Future]:
        """Turns that arrive together (keyword arguments of submit each, stream_id included) enter
        the queue at once, so the worker never takes part of them; every refusal, OverloadedError
        and SchedulerClosedError included, is that turn's future's."""
        futures, evicted = [], []
        try:
            with self._lock:
                for turn in turns:
                    try:
                        futures.append(self._submit(**turn, evicted=evicted))
                    except AnymodalError as exc:
                        futures.append(_failed(exc))
        finally:
            self.notify(evicted)
        return futures

    def _submit(self, stream_id, arrays: dict, nonfinite: str = "error", start: bool | None = None,
                end: bool = False, evicted: list | None = None) -> Future:
        from .scheduler import Job

        with self._lock:
            self._scheduler._check_open()
            stream, opened = self._table.get(stream_id), False
            if stream is not None and start:  # a new stream under a used id: the old one ends
                self._end(stream_id, "ended")
                stream = None
            if stream is None:
                if start is False:
                    return _failed(StreamClosedError(
                        f"stream {stream_id!r} is not open ({self._gone.get(stream_id, 'never started')}); "
                        "a turn that continues a stream needs an open one: start it again"))
                if len(self._table) >= self.max_streams and start:
                    evicted += self._reclaim()
                if len(self._table) >= self.max_streams:
                    raise OverloadedError(f"{len(self._table)} streams open (max_streams={self.max_streams}); "
                                          "end or let idle streams expire, or raise max_streams")
                stream = Stream(self._open(), self._clock())
                self._table[stream_id] = stream
                self._gone.pop(stream_id, None)
                opened = True
            try:
                req = stream.conversation.check_turn(**{MODALITY_NAMES[m]: x for m, x in arrays.items()},
                                                     nonfinite=nonfinite)
            except RequestError as exc:
                if opened:  # a stream whose first turn was refused was never opened
                    del self._table[stream_id]
                    stream.conversation.detach()
                    self._remember(stream_id, "its first turn was refused")
                elif end:
                    self._end(stream_id, "ended")
                return _failed(exc)
            stream.pending += 1
            future: Future = Future()
            try:
                self._scheduler.enqueue(Job(TURN_KEY, 1, future, (stream, req)))
            except BaseException:
                stream.pending -= 1
                if opened:
                    del self._table[stream_id]
                    stream.conversation.detach()
                raise
            if end:  # its caches leave the pool once this turn is done (_finished)
                self._end(stream_id, "ended")
        future.add_done_callback(lambda _f: self._finished(stream))  # done, failed or cancelled
        return future

    def all_waiting(self) -> bool:
        """Every open stream has a turn pending (the worker's lock held): nothing more can join
        the next batch, so it runs at once instead of waiting max_delay_ms for batch-mates."""
        return all(s.pending > 0 for s in self._table.values())

    def _open(self) -> Conversation:
        """A new stream's Conversation, its caches in the pool when turns can be batched."""
        rt = self._scheduler.runtime
        if self._batched and self._pool is None:
            probe = Conversation(rt, 1)  # only a streaming conversation has caches to pool
            if probe.mode == STREAM:
                self._pool = CachePool(rt, self.max_streams, self.max_context)
            else:
                self._batched = False
        return Conversation(rt, self.max_context, pool=self._pool if self._batched else None)

    def _finished(self, stream: Stream) -> None:
        with self._lock:
            stream.pending -= 1
            stream.last_active = self._clock()
            if stream.ended and stream.pending == 0:
                stream.conversation.detach()

    def end(self, stream_id) -> bool:
        """Close a stream now (turns already submitted still run). False if it was not open."""
        with self._lock:
            return self._end(stream_id, "ended")

    def _end(self, stream_id, why: str) -> bool:
        stream = self._table.pop(stream_id, None)
        if stream is not None:
            stream.ended = True
            if stream.pending == 0:  # else when its last pending turn is done (_finished)
                stream.conversation.detach()
            self._remember(stream_id, why)
        return stream is not None

    def _remember(self, stream_id, why: str) -> None:
        """Why a stream is no longer open, for the StreamClosedError of a late turn (bounded)."""
        self._gone[stream_id] = why
        self._gone.move_to_end(stream_id)
        while len(self._gone) > GONE_KEPT:
            self._gone.popitem(last=False)

    def _reclaim(self) -> list[tuple[object, Conversation]]:
        """A full table and a turn that starts a stream: the stream idle the longest (no turn
        pending) is evicted for it. Triton admits a new sequence only once it has released one
        and never says which (server#3492), so the table holds one it released: most likely the
        longest idle; were it a live one, its next turn gets a StreamClosedError."""
        idle = [(s.last_active, sid) for sid, s in self._table.items() if s.pending == 0]
        if not idle:
            return []
        sid = min(idle, key=lambda x: x[0])[1]
        conv = self._table[sid].conversation
        self._end(sid, "evicted for a new stream: the stream table was full")
        return [(sid, conv)]

    # -- running (the scheduler's worker) ----------------------------------------------------
    def run(self, jobs: list) -> None:
        """The turns in waves (a stream's k-th turn of the group in wave k), each wave one
        batched step-graph call; results in each stream's submission order."""
        stats = self._scheduler.stats
        waves: list[list] = []
        seen: dict[int, int] = {}  # id(stream) -> its turns so far in this group
        for job in jobs:
            k = seen.get(id(job.payload[0]), 0)
            seen[id(job.payload[0])] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(job)
        for wave in waves:
            batches: dict[object, list] = {}  # the pooled turns together, any other alone
            for job in wave:
                pooled = self._pool is not None and job.payload[0].conversation._pool is self._pool
                batches.setdefault("pool" if pooled else id(job), []).append(job)
            for group in batches.values():
                stats.jobs += len(group)
                stats.calls += 1
                if len(group) == 1:  # one turn: its pattern's single-stream step graph (no Gather)
                    results = [_alone(*group[0].payload)]
                else:
                    results = run_turn_batch(self._pool, [(j.payload[0].conversation, j.payload[1]) for j in group])
                for job, res in zip(group, results):
                    if isinstance(res, BaseException):
                        job.future.set_exception(res)
                    else:
                        job.future.set_result(res)

    # -- idle eviction -----------------------------------------------------------------------
    def wait_s(self) -> float | None:
        """How long the idle worker may sleep before the next stream could be due for eviction
        (None: forever; at most idle_timeout_s, at least 1 ms)."""
        if self.idle_timeout_s is None:
            return None
        due = [s.last_active for s in self._table.values() if s.pending == 0]
        if not due:
            return self.idle_timeout_s
        return min(self.idle_timeout_s, max(1e-3, min(due) + self.idle_timeout_s - self._clock()))

    def pop_idle(self) -> list[tuple[object, Conversation]]:
        """Remove the streams idle for idle_timeout_s (no turn pending); the caller notifies."""
        if self.idle_timeout_s is None:
            return []
        with self._lock:
            now = self._clock()
            idle = [sid for sid, s in self._table.items()
                    if s.pending == 0 and now - s.last_active >= self.idle_timeout_s]
            evicted = [(sid, self._table[sid].conversation) for sid in idle]
            for sid in idle:  # the caller may keep using its Conversation; its pool row is given back
                self._end(sid, f"evicted after {self.idle_timeout_s:g} s idle")
            return evicted

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


def _failed(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


def _alone(stream: Stream, req):
    """One turn through Conversation.add_request: its prediction, or the exception it raised."""
    try:
        return stream.conversation.add_request(req)
    except Exception as exc:  # noqa: BLE001 - the caller hands it to the turn's future
        return exc
