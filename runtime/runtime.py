"""The torch-free Runtime: picks the graph from the sensors that reported data (DESIGN §7).

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
from .requests import UTTERANCES, Request, build_request


class Runtime:
    def __init__(self, bundle: str | Path, backend: str = "auto", precision: str | None = None,
                 threads: int | None = None, preload: bool = False, low_memory: bool = False):
        self.bundle = Bundle(bundle, precision)
        self.family = self.bundle.family
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
        if preload:
            for graph in self.bundle.graphs:
                self.backend.session(graph)

    @classmethod
    def with_backend(cls, bundle: Bundle, backend) -> "Runtime":
        """A Runtime over a backend object built elsewhere (e.g. Triton's BLS calls to per-graph
        models): same request checks, graph choice and decoding."""
        rt = cls.__new__(cls)
        rt.bundle, rt.family, rt.backend, rt.backend_notes = bundle, bundle.family, backend, []
        return rt

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def request(self, audio=None, text=None, visual=None, *, present=None, lengths=None,
                nonfinite: str = "error") -> Request:
        """Validate a request for this bundle's model (RequestError names what is wrong)."""
        return build_request(self.family.inputs.name, self.bundle.dims, self.bundle.float_dtype,
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
        graph = req.graph
        cfg = self.bundle.model["config"]
        feeds = self.family.feeds(req, graph, self.bundle.dims, self.bundle.float_dtype, cfg)
        out = {k: v.astype(np.float32) for k, v in self.backend.run(graph, feeds).items()}
        rows = next(iter(req.mask.values())) if self.family.inputs.name == UTTERANCES else None
        for name, value in out.items():  # outputs at padding rows (utterances) are never served
            real = value[rows] if rows is not None and value.shape[:2] == rows.shape else value
            if not np.isfinite(real).all():
                raise ModelError(f"graph {graph!r} ({self.bundle.precision}, {self.backend.name}) returned "
                                 f"NaN/Inf in output {name!r}; not served")
        dec = self.family.decode(self.bundle.task, self.bundle.labels, req, graph, out)
        if rows is not None and not rows.all():  # padding rows: 0 / "" instead of whatever ran there
            for arr in (dec.probs, dec.scores, *dec.router_weights.values()):
                if arr is not None and arr.shape[:2] == rows.shape:
                    arr[~rows] = 0
            if dec.labels is not None:
                dec.labels[~rows] = ""
        pred = Prediction(self.family.name, self.bundle.task, req.pattern, graph, self.backend.name,
                          dec.labels, dec.probs, dec.scores, dict(req.present), req.lengths,
                          dec.router_weights, dec.router_experts, dict(req.nonfinite))
        return pred if req.batched else _unbatch(pred)

    def conversation(self, max_context: int = 64):
        """A live conversation on this Runtime, one utterance per `add()` (runtime/conversation.py):
        streamed through step graphs on a causal bundle, else by re-scoring the window. Keeps at
        most `max_context` utterances. ConversationError for a family without conversations
        (DERL), RequestError for max_context < 1."""
        from .conversation import Conversation

        return Conversation(self, max_context)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _unbatch(p: Prediction) -> Prediction:
    def first(x):
        return None if x is None else x[0]

    def each(d):
        return {k: v[0] for k, v in d.items()}

    return Prediction(p.family, p.task, p.pattern, p.graph, p.backend, first(p.labels), first(p.probs),
                      first(p.scores), each(p.present), each(p.lengths), each(p.router_weights),
                      p.router_experts, each(p.nonfinite))
