"""Following a live conversation one utterance at a time (numpy only; docs/ARCHITECTURE.md §7a).

    conv = rt.conversation(max_context=64)
    p = conv.add(audio=a_i, text=t_i)      # one utterance; visual absent this turn
    p.label, p.probs / p.score, p.pattern, p.router_weights, conv.length, conv.mode
    conv.reset()

Two modes, chosen from the bundle, reported by `Conversation.mode`:
  stream   the bundle is causal and has step graphs: each turn runs the step graph of the turn's
           pattern on the new utterance only, against the keys/values cached for every
           (modality stream, expert, block); the caches live here, preallocated.
  rescore  fallback (bidirectional bundles, or a variant without step graphs): each turn re-runs
           the full graph over the window and keeps the last utterance's outputs.
The window: the last utterances since reset, at most `max_context`. When a turn finds it full,
the oldest utterances are dropped so that the newest max_context // 2 remain (positions restart
at 0) and, in stream mode, the caches are rebuilt by re-stepping those (amortised: about one
extra step per turn). Every prediction is that of the full graph over the window it was made in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import ConversationError, ModelError, RequestError
from .families.base import CACHED, CONTEXT, NEW, PAST, STEP_POSITION, step_graph_name
from .jsonio import clean
from .patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

STREAM, RESCORE = "stream", "rescore"


@dataclass
class TurnPrediction:
    """The prediction for one utterance of a conversation."""

    family: str
    task: str  # "emotion" (label/probs) or "sentiment" (score)
    mode: str  # "stream" | "rescore"
    graph: str  # what ran: a step graph ("step_at"), or the full graph re-scored ("at", "masked")
    backend: str
    turn: int  # turns added since reset, this one excluded (0 = first)
    position: int  # the utterance's index in the window it was scored in
    pattern: str  # modalities present this turn ("at")
    present: dict[str, bool]  # m -> present this turn, every modality
    label: str | None  # class name (emotion)
    probs: np.ndarray | None  # [C] (emotion)
    score: float | None  # sentiment, in [-3, 3]
    router_weights: dict[str, np.ndarray] = field(default_factory=dict)  # present m -> [3]
    router_experts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # m -> expert names

    def to_dict(self) -> dict:
        """JSON-ready dict (modality keys a, t, v; arrays as lists; every number finite)."""
        return clean({"family": self.family, "task": self.task, "mode": self.mode, "graph": self.graph,
                      "backend": self.backend, "turn": self.turn, "position": self.position,
                      "pattern": self.pattern, "present": self.present,
                      "outputs": {"label": self.label, "probs": self.probs, "score": self.score},
                      "router_weights": self.router_weights,
                      "router_experts": {k: list(v) for k, v in self.router_experts.items()}})


class Conversation:
    """One live conversation on a Runtime. Many may share a Runtime (each holds its own window
    and caches); one Conversation serialises its own calls with a lock."""

    def __init__(self, runtime, max_context: int = 64, pool=None):
        family = runtime.family
        if not family.supports_conversation:
            raise ConversationError(
                f"{runtime.bundle.path}: a {family.name} model cannot follow a conversation: its graphs "
                f"do not score the utterances of one conversation (use Runtime.predict per sample)")
        if isinstance(max_context, bool) or not isinstance(max_context, (int, np.integer)) or max_context < 1:
            raise RequestError(f"max_context: expected an int >= 1 (utterances kept), got {max_context!r}")
        self.runtime, self.max_context = runtime, int(max_context)
        bundle = runtime.bundle
        self._dtype = np.dtype(bundle.float_dtype)
        dims = bundle.dims
        layout = family.cache_layout(bundle.model["config"])
        steps = {p: step_graph_name(p) for p in ALL_PATTERNS}
        backend = runtime.backend
        serves = getattr(backend, "serves", lambda graph: False)  # e.g. Triton's per-graph models: none
        if layout is not None and all(s in bundle.step_graphs and serves(s) for s in steps.values()):
            self.mode, self.mode_reason = STREAM, "causal bundle: step graphs with cached keys/values"
            self._steps = steps
            first = bundle.step_graphs[steps[ALL_PATTERNS[0]]]["inputs"]
            self._position_fed = any(spec["name"] == STEP_POSITION for spec in first)
        else:
            self.mode, self._steps = RESCORE, {}
            if layout is None:
                why = "bidirectional bundle"
            elif not all(s in bundle.step_graphs for s in steps.values()):
                why = f"causal bundle without step graphs in its {bundle.precision} variant"
            else:
                why = f"causal bundle, but the {backend.name} backend has no step graphs loaded/built"
            self.mode_reason = f"{why}: each turn re-scores the window with the full graph"
        C = self.max_context
        # the window's raw utterances (re-scoring, cache rebuilds) and availability
        self._features = {m: np.zeros((C, dims[m]), self._dtype) for m in MODALITIES}  # m -> [C, d_m]
        self._avail = np.zeros((C, len(MODALITIES)), bool)  # [C, 3]
        # stream mode: per modality stream its n caches, slot k = its k-th present utterance in the
        # window; fed whole every turn (the step graph reads only the filled slots)
        self._cache: dict[str, list[np.ndarray]] = {}
        self._pool, self._row = None, None  # a CachePool's row holds the caches (batched turns)
        if self.mode == STREAM:
            n, shape = layout
            self._slot_axis = shape.index(CONTEXT)
            full = tuple(C if d == CONTEXT else d for d in shape)
            if pool is not None:
                if pool.max_context != C:
                    raise ConversationError(f"cache pool of {pool.max_context} slots per stream for a "
                                            f"conversation of max_context={C}")
                self._pool, self._row = pool, pool.acquire()
                self._cache = pool.views(self._row)  # contiguous views: the step graphs read them as is
            else:
                self._cache = {m: [np.zeros(full, self._dtype) for _ in range(n)] for m in MODALITIES}
        self._cached = dict.fromkeys(MODALITIES, 0)  # m -> filled slots of m's caches
        self.length = 0  # utterances in the window
        self.turns = 0  # turns added since reset
        self._lock = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        """Bytes of the arrays this conversation holds (preallocated; fixed by max_context)."""
        arrays = [*self._features.values(), self._avail, *(a for c in self._cache.values() for a in c)]
        return int(sum(a.nbytes for a in arrays))

    def detach(self) -> None:
        """Move the caches out of the pool into arrays of this conversation's own and give the
        row back (a stream that was ended or evicted may still be used; its row may not)."""
        with self._lock:
            if self._pool is not None:
                self._cache = {m: [a.copy() for a in c] for m, c in self._cache.items()}
                self._pool.release(self._row)
                self._pool, self._row = None, None

    def reset(self) -> None:
        """Forget the conversation (the buffers stay allocated)."""
        with self._lock:
            self.length, self.turns = 0, 0
            self._cached = dict.fromkeys(MODALITIES, 0)

    def add(self, audio=None, text=None, visual=None, *, nonfinite: str = "error") -> TurnPrediction:
        """Score one new utterance: [dim] or [1, dim] per modality that reported (None = absent
        this turn). RequestError for a turn with no modality, wrong dims, NaN/Inf (nonfinite=
        "absent" treats a non-finite modality as absent instead), as Runtime.predict."""
        return self.add_request(self.check_turn(audio, text, visual, nonfinite=nonfinite))

    def check_turn(self, audio=None, text=None, visual=None, *, nonfinite: str = "error"):
        """The validated one-utterance Request of a turn (add's checks, RequestError as add);
        nothing changes until add_request(req) (the Scheduler validates at submit this way)."""
        arrays = {m: _one_utterance(m, x) for m, x in zip(MODALITIES, (audio, text, visual))}
        if all(x is None for x in arrays.values()):
            raise RequestError(f"turn {self.turns}: every modality is absent; give at least one of "
                               "audio, text, visual")
        return self.runtime.request(**{MODALITY_NAMES[m]: x for m, x in arrays.items()}, nonfinite=nonfinite)

    def add_request(self, req) -> TurnPrediction:
        """Score a turn validated by check_turn (of this conversation's Runtime)."""
        with self._lock:
            i = self._begin(req)
            try:
                if self.mode == STREAM:
                    graph, out = self._step(i)
                else:
                    graph, out = self._rescore(i + 1)
            except BaseException:
                self._avail[i] = False  # the turn did not happen
                raise
            self.length += 1
            turn, self.turns = self.turns, self.turns + 1
        return self._decode(req, graph, out, turn, i)

    def _begin(self, req) -> int:
        """Make room for the turn (evicting a full window) and write its utterance at its index
        in the window, which is returned; length/turns move on only once it is scored."""
        if self.length == self.max_context:
            self._evict()
        i = self.length
        for k, m in enumerate(MODALITIES):
            used = m in req.present and bool(req.present[m][0, 0])
            self._avail[i, k] = used
            self._features[m][i] = req.features[m][0, 0] if used else 0
        return i

    def _write_slots(self, m: str, new: np.ndarray) -> None:
        """The new utterance's slot of each of m's caches (new [n, *slot]), in place."""
        slot = (slice(None),) * self._slot_axis + (self._cached[m],)
        for cache, row in zip(self._cache[m], new):
            cache[slot] = row
        self._cached[m] += 1

    # -- stream mode -------------------------------------------------------------------------
    def _step(self, i: int) -> tuple[str, dict[str, np.ndarray]]:
        """Run utterance i of the window through its pattern's step graph; write its cache slots."""
        pattern = "".join(m for k, m in enumerate(MODALITIES) if self._avail[i, k])
        graph = self._steps[pattern]
        feeds = {STEP_POSITION: np.array([i], np.int64)} if self._position_fed else {}
        for m in pattern:
            name = MODALITY_NAMES[m]
            feeds[name] = self._features[m][i:i + 1][None]  # [1, 1, d_m]
            for k, cache in enumerate(self._cache[m]):
                feeds[f"{PAST}{name}_{k}"] = cache  # the whole preallocated buffer: no copy
            feeds[CACHED + name] = np.array([self._cached[m]], np.int64)
        out = self.runtime.backend.run(graph, feeds)
        for name, value in out.items():
            if not np.isfinite(value).all():
                raise ModelError(f"step graph {graph!r} ({self.runtime.bundle.precision}, "
                                 f"{self.runtime.backend.name}) returned NaN/Inf in {name!r}; not served")
        for m in pattern:
            self._write_slots(m, out[NEW + MODALITY_NAMES[m]])
        return graph, out

    def _evict(self) -> None:
        """Keep the newest max_context // 2 utterances at positions 0.. and, in stream mode,
        rebuild their caches (positions changed, so every cached key/value is stale)."""
        keep = self.max_context // 2
        drop = self.length - keep
        for m in MODALITIES:
            self._features[m][:keep] = self._features[m][drop:self.length]
        self._avail[:keep] = self._avail[drop:self.length]
        self._avail[keep:] = False
        self.length = keep
        if self.mode == STREAM:
            self._cached = dict.fromkeys(MODALITIES, 0)
            for j in range(keep):
                self._step(j)

    # -- rescore mode ------------------------------------------------------------------------
    def _rescore(self, n: int) -> tuple[str, dict[str, np.ndarray]]:
        """The full graph over the window's n utterances; outputs of the last one [1, 1, ...]."""
        arrays, present = {}, {}
        for k, m in enumerate(MODALITIES):
            if self._avail[:n, k].any():
                arrays[MODALITY_NAMES[m]] = self._features[m][:n]
                present[m] = self._avail[:n, k].copy()
        req = self.runtime.request(**arrays, present=present)
        pred = self.runtime.run(req)
        return pred.graph, {"prediction": pred}

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self, req, graph: str, out: dict, turn: int, position: int) -> TurnPrediction:
        rt = self.runtime
        bundle = rt.bundle
        if "prediction" in out:  # rescore: the window's Prediction, last row
            p = out["prediction"]
            labels, probs, scores = p.labels, p.probs, p.scores
            weights = {m: w[-1] for m, w in p.router_weights.items() if m in req.pattern}
            experts = {m: p.router_experts[m] for m in weights if m in p.router_experts}
            label = None if labels is None else str(labels[-1])
            probs = None if probs is None else probs[-1]
            score = None if scores is None else float(scores[-1])
        else:  # stream: the step graph's outputs are the pattern graph's at batch 1, seq 1
            outs = {k: v.astype(np.float32) for k, v in out.items() if not k.startswith(NEW)}
            dec = rt.family.decode(bundle.task, bundle.labels, req, req.pattern, outs)
            label = None if dec.labels is None else str(dec.labels[0, 0])
            probs = None if dec.probs is None else dec.probs[0, 0]
            score = None if dec.scores is None else float(dec.scores[0, 0])
            weights = {m: w[0, 0] for m, w in dec.router_weights.items()}
            experts = {m: dec.router_experts[m] for m in weights if m in dec.router_experts}
        present = {m: bool(m in req.pattern) for m in MODALITIES}
        return TurnPrediction(rt.family.name, bundle.task, self.mode, graph, rt.backend.name, turn, position,
                              req.pattern, present, label, probs, score, weights, experts)


def _one_utterance(m: str, x):
    """[dim] -> [1, dim]; [1, dim] as is; anything else is left to the request checks, except
    several utterances at once."""
    if x is None:
        return None
    try:
        arr = np.asarray(x) if isinstance(x, (np.ndarray, list, tuple)) else x
    except (ValueError, TypeError):  # ragged lists: the request checks name them
        return x
    if isinstance(arr, np.ndarray):
        if arr.ndim == 1:
            return arr[None]
        if arr.ndim != 2 or arr.shape[0] != 1:
            raise RequestError(f"{MODALITY_NAMES[m]}: one utterance per add(): expected [dim] or [1, dim], "
                               f"got shape {arr.shape}")
    return arr


__all__ = ["RESCORE", "STREAM", "Conversation", "TurnPrediction"]
