"""The torch-free Runtime: picks the graph from the sensors that reported data (DESIGN §7).

    rt = Runtime("bundle/", backend="auto")
    p = rt.predict(audio=a, text=t, visual=None)     # [L, dim] or [B, L, dim]; None = absent
    p.pattern, p.labels, p.probs / p.scores, p.router_weights, p.backend
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import BACKENDS, select_backend
from .bundle import Bundle
from .errors import BundleError
from .inputs import MASKED, build_request
from .patterns import MODALITIES
from .sequence_inputs import build_sequence_request


@dataclass
class Prediction:
    pattern: str  # modalities used (for the masked graph: every modality present somewhere)
    graph: str  # the graph that ran: a pattern name or "masked"
    backend: str
    labels: np.ndarray | None  # [(B,) L] class names (emotion)
    probs: np.ndarray | None  # [(B,) L, C] (emotion)
    scores: np.ndarray | None  # [(B,) L] sentiment in [-3, 3] (sentiment)
    router_weights: dict[str, np.ndarray] = field(default_factory=dict)  # m -> [(B,) L, 3]
    mask: np.ndarray | None = None  # [(B,) L] real utterances


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Runtime:
    def __init__(self, bundle: str | Path, backend: str = "auto", precision: str | None = None,
                 threads: int | None = None, preload: bool = False, low_memory: bool = False):
        self.bundle = Bundle(bundle, precision)
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

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def predict(self, audio=None, text=None, visual=None, *, present=None, lengths=None) -> Prediction:
        """Utterance-level models (MoMKE): predict every utterance of one conversation ([L, dim]
        arrays) or a batch ([B, L, dim] with optional `lengths` [B]); `present` maps a modality
        to a per-utterance bool mask when a sensor reported data for only some utterances.
        Sequence-level models (DERL): one sample ([T_m, dim] per modality, own lengths) or a
        batch ([B, T_m, dim]); `lengths` and `present` map a modality to [B] real lengths and
        to a per-token bool mask of observed tokens."""
        if self.bundle.sequence_model:
            return self._predict_sequence(audio, text, visual, present, lengths)
        req = build_request(self.bundle.dims, self.bundle.float_dtype, audio, text, visual,
                            present=present, lengths=lengths)
        out = self.backend.run(req.graph, req.feeds)
        logits = out["logits"].astype(np.float32)  # [B, L, C]
        weights = out["router_weights"].astype(np.float32)  # [B, L, P, 3]
        graph_mods = MODALITIES if req.graph == MASKED else tuple(req.graph)
        router = {}
        for i, m in enumerate(graph_mods):
            if m in req.modalities:
                w = weights[:, :, i]
                if req.graph == MASKED:  # utterances where m is absent have no routing
                    w = np.where(req.avail[..., MODALITIES.index(m), None], w, np.nan)
                router[m] = w
        labels = probs = scores = None
        if self.bundle.task == "emotion":
            probs = _softmax(logits)
            labels = np.asarray(self.bundle.labels, dtype=object)[probs.argmax(-1)]
        else:
            scores = logits[..., 0]
        pattern = "".join(m for m in MODALITIES if m in req.modalities)
        pred = Prediction(pattern, req.graph, self.backend.name, labels, probs, scores, router, req.mask)
        return pred if req.batched else _unbatch(pred)

    def _predict_sequence(self, audio, text, visual, present, lengths) -> Prediction:
        req = build_sequence_request(self.bundle.dims, self.bundle.absent_lengths, self.bundle.float_dtype,
                                     audio, text, visual, present=present, lengths=lengths)
        out = self.backend.run(req.graph, req.feeds)
        scores = out["logits"].astype(np.float32)[:, 0]  # [B]
        weights = {"modality_routing": out["router_weights"].astype(np.float32)}  # [B, N, 6]
        pattern = "".join(req.modalities)
        pred = Prediction(pattern, req.graph, self.backend.name, None, None, scores, weights, None)
        return pred if req.batched else _unbatch(pred)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _unbatch(p: Prediction) -> Prediction:
    def first(x):
        return None if x is None else x[0]

    return Prediction(p.pattern, p.graph, p.backend, first(p.labels), first(p.probs), first(p.scores),
                      {m: w[0] for m, w in p.router_weights.items()}, first(p.mask))
