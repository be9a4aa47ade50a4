"""The torch-free Runtime: picks the graph from the sensors that reported data (docs/ARCHITECTURE.md §7).

    rt = Runtime("bundle/", backend="auto")
    p = rt.predict(audio=a, text=t, visual=None)     # None = sensor absent
    p.pattern, p.graph, p.labels / p.probs / p.scores, p.router_weights, p.to_dict()

Every family goes through the same steps: validate the request (requests.py), build the feeds
of the chosen graph (the family's input kind), run it, refuse non-finite outputs, decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends import BACKENDS, select_backend
from .bundle import Bundle
from .errors import BundleError, ModelError
from .patterns import MODALITIES
from .prediction import Prediction
from .requests import Request, all_finite, build_request

_F32 = np.dtype(np.float32)


class Runtime:
    def __init__(self, bundle: str | Path, backend: str = "auto", precision: str | None = None,
                 threads: int | None = None, preload: bool = False, low_memory: bool = False,
                 spinning: bool = False):
        self.bundle = Bundle(bundle, precision)
        self.family = self.bundle.family
        self._cache_bundle_facts()
        registry = dict(BACKENDS)
        self.backend_notes: list[str] = []
        while True:
            cls, notes = select_backend(backend, registry)
            try:
                self.backend = cls(self.bundle, threads=threads)
                break
            except BundleError as exc:  # e.g. a GPU, but no engines built for it yet
                if backend != "auto":
                    raise
                self.backend_notes.append(f"{cls.name}: {exc}")
                del registry[cls.name]
        self.backend_notes = notes + self.backend_notes
        self.backend.low_memory = low_memory  # before any graph loads (see Backend.low_memory)
        self.backend.spinning = spinning  # likewise (see Backend.spinning: measured, off by default)
        if preload:
            for graph in self.bundle.graphs:
                self.backend.session(graph)

    @classmethod
    def with_backend(cls, bundle: Bundle, backend) -> "Runtime":
        """A Runtime over a backend object built elsewhere (e.g. Triton's BLS calls to per-graph
        models): same request checks, graph choice and decoding."""
        rt = cls.__new__(cls)
        rt.bundle, rt.family, rt.backend, rt.backend_notes = bundle, bundle.family, backend, []
        rt._cache_bundle_facts()
        return rt

    def _cache_bundle_facts(self) -> None:
        """What every request reads from the manifest, looked up once (the request path)."""
        b = self.bundle
        self._dims, self._config = b.dims, b.model["config"]
        self._float_dtype = np.dtype(b.float_dtype)  # an object: dtype checks need no name parsing
        self._task, self._input_kind = b.task, self.family.inputs
        self._class_names = np.asarray(b.labels, dtype=object)  # indexed by argmax when decoding

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def request(self, audio=None, text=None, visual=None, *, present=None, lengths=None,
                nonfinite: str = "error") -> Request:
        """Validate a request for this bundle's model (RequestError names what is wrong)."""
        return build_request(self._input_kind, self._dims, self._float_dtype,
                             dict(zip(MODALITIES, (audio, text, visual))), present, lengths, nonfinite)

    def predict(self, audio=None, text=None, visual=None, *, present=None, lengths=None,
                nonfinite: str = "error") -> Prediction:
        """Predict from the modalities given (None = sensor absent).

        Utterance-level families (MoMKE): [L, dim] arrays (one conversation) or [B, L, dim] with
        `lengths` [B]; `present` maps a modality to a bool [(B,) L] per-utterance mask.
        Sequence-level families (DERL): [T_m, dim] or [B, T_m, dim] per modality with its own
        length; `lengths` maps a modality to [B] lengths, `present` to a per-token bool mask.
        nonfinite="error" (default) refuses NaN/Inf in a used item; "absent" treats such items as
        absent (Prediction.present and .nonfinite say which).
        Raises RequestError for a bad request and ModelError if a graph returns NaN/Inf."""
        req = self.request(audio, text, visual, present=present, lengths=lengths, nonfinite=nonfinite)
        return self.run(req)

    def run(self, req: Request) -> Prediction:
        return self.prediction(req, self.infer(req))

    def infer(self, req: Request):
        """Run req.graph on a validated request: the family's Decoded outputs, batched, with the
        rows of padding utterances zeroed ("" labels). ModelError for NaN/Inf at a real row.
        The Scheduler runs several requests merged into one this way (runtime/scheduler.py)."""
        graph = req.graph
        feeds = self.family.feeds(req, graph, self._dims, self._float_dtype, self._config)
        # backends return arrays the caller owns (Backend.run), so the Prediction may keep views
        # of them; float32 outputs are not copied, fp16 ones are decoded in float32
        out = self.backend.run(graph, feeds)
        for value in out.values():
            if value.dtype is not _F32:
                out = {k: v if v.dtype is _F32 else v.astype(np.float32) for k, v in out.items()}
                break
        padded = not req.complete  # a complete request has no padding rows
        rows = self._input_kind.item_rows(req.mask) if padded else None  # [B, L] when outputs have a row per item
        padded = rows is not None and not rows.all()
        for name, value in out.items():  # outputs at padding rows (utterances) are never served
            real = value[rows] if padded and value.shape[:2] == rows.shape else value
            if not all_finite(real):
                raise ModelError(f"graph {graph!r} ({self.bundle.precision}, {self.backend.name}) returned "
                                 f"NaN/Inf in output {name!r}; not served")
        dec = self.family.decode(self._task, self._class_names, req, graph, out)
        if padded:  # padding rows: 0 / "" instead of whatever ran there
            for arr in (dec.probs, dec.scores, *dec.router_weights.values()):
                if arr is not None and arr.shape[:2] == rows.shape:
                    arr[~rows] = 0
            if dec.labels is not None:
                dec.labels[~rows] = ""
        return dec

    def prediction(self, req: Request, dec) -> Prediction:
        """The Prediction of a request from its Decoded outputs (batched like req.features)."""
        labels, probs, scores = dec.labels, dec.probs, dec.scores
        present, lengths, router, nonfinite = req.present, req.lengths, dec.router_weights, req.nonfinite
        if req.batched:
            present, nonfinite = dict(present), dict(nonfinite)  # the Prediction's own dicts
        else:  # one sample given: its outputs without the batch axis
            labels = None if labels is None else labels[0]
            probs = None if probs is None else probs[0]
            scores = None if scores is None else scores[0]
            present = {k: v[0] for k, v in present.items()}
            lengths = {k: v[0] for k, v in lengths.items()}
            router = {k: v[0] for k, v in router.items()}
            nonfinite = {k: v[0] for k, v in nonfinite.items()} if nonfinite else {}
        return Prediction(self.family.name, self._task, req.pattern, req.graph, self.backend.name, labels, probs,
                          scores, present, lengths, router, dec.router_experts, nonfinite)

    def conversation(self, max_context: int = 64):
        """A live conversation on this Runtime, one utterance per `add()` (runtime/conversation.py):
        streamed through step graphs on a causal bundle, else by re-scoring the window. Keeps at
        most `max_context` utterances. ConversationError for a family without conversations
        (DERL), RequestError for max_context < 1."""
        from .conversation import Conversation

        return Conversation(self, max_context)

    def scheduler(self, max_batch: int = 16, max_delay_ms: float = 2, max_queue: int = 256, **streams):
        """A Scheduler on this Runtime (runtime/scheduler.py): `submit(...)` takes predict's
        arguments and returns a Future; pending requests of the same graph run as one batched
        call. `streams`: max_streams, max_context, idle_timeout_s, on_evict for `submit_turn`.
        Close it (or use it as a context manager) before closing the Runtime."""
        from .scheduler import Scheduler

        return Scheduler(self, max_batch, max_delay_ms, max_queue, **streams)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

