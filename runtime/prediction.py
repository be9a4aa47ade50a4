"""The one Prediction every family returns, and its JSON form (`rt-run --json`, servers).

Leading axes: utterance-level families [(B,) L] (one output per utterance), sequence-level
families [(B,)] (one output per sample); (B,) only when the request was batched.
The outputs belong to the Prediction; `present` and `lengths` of a request without `lengths`,
`present` or non-finite exclusions are read-only arrays shared by every such request of that
shape (all True / the full length), made once instead of per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .jsonio import clean

TO_DICT_KEYS = ("family", "task", "pattern", "graph", "backend", "outputs", "present", "lengths",
                "nonfinite", "router_weights", "router_experts")


@dataclass
class Prediction:
    family: str  # the model family (manifest model.kind)
    task: str  # "emotion" (labels/probs) or "sentiment" (scores)
    pattern: str  # modalities used: those with at least one item present ("at", "atv", …)
    graph: str  # the graph that ran: a pattern name, or "masked" when availability varied per item
    backend: str  # "ort-cpu", "tensorrt", …
    labels: np.ndarray | None  # [(B,) (L)] class names (emotion)
    probs: np.ndarray | None  # [(B,) (L), C] (emotion)
    scores: np.ndarray | None  # [(B,) (L)] (sentiment, in [-3, 3])
    present: dict[str, np.ndarray]  # m -> bool [(B,) T_m]: items of m the model used (False = absent/padding)
    lengths: dict[str, np.ndarray]  # m -> int [(B,)]: real items of each given modality
    router_weights: dict[str, np.ndarray] = field(default_factory=dict)  # expert input -> [(B,) (N), E]
    router_experts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # expert input -> E names
    nonfinite: dict[str, np.ndarray] = field(default_factory=dict)  # m -> bool [(B,) T_m], nonfinite="absent"

    def to_dict(self) -> dict:
        """JSON-ready dict with stable keys (TO_DICT_KEYS); arrays become nested lists, absent
        outputs null. `outputs` = {"labels", "probs", "scores"}; modality keys are a, t, v;
        `router_weights` is keyed by the input a router mixes experts for (a modality letter, or
        "fusion" for a router over the modalities' representations), its last axis named by
        `router_experts`. Every number is finite (the runtime refuses non-finite outputs)."""
        return clean({
            "family": self.family, "task": self.task, "pattern": self.pattern, "graph": self.graph,
            "backend": self.backend,
            "outputs": {"labels": self.labels, "probs": self.probs, "scores": self.scores},
            "present": self.present, "lengths": self.lengths, "nonfinite": self.nonfinite,
            "router_weights": self.router_weights,
            "router_experts": {k: list(v) for k, v in self.router_experts.items()},
        })
