"""Conversation batching: pad to the longest conversation, with a padding mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymodal.runtime.patterns import MODALITIES

from .conversations import Conversation


@dataclass
class Batch:
    features: dict[str, np.ndarray]  # modality -> [B, L, dim] float32, zero-padded
    mask: np.ndarray  # [B, L] bool, True = real utterance
    labels: np.ndarray  # [B, L] int64 / float32, padding = 0


def collate(convs: list[Conversation]) -> Batch:
    B, L = len(convs), max(len(c) for c in convs)
    feats = {m: np.zeros((B, L, convs[0].features[m].shape[1]), np.float32) for m in MODALITIES}
    mask = np.zeros((B, L), bool)
    labels = np.zeros((B, L), convs[0].labels.dtype)
    for i, c in enumerate(convs):
        n = len(c)
        mask[i, :n] = True
        labels[i, :n] = c.labels
        for m in MODALITIES:
            feats[m][i, :n] = c.features[m]
    return Batch(feats, mask, labels)


def iterate_batches(convs: list[Conversation], batch_size: int, rng: np.random.Generator | None):
    """Yield Batches; shuffled when an rng is given (training), in order otherwise."""
    order = rng.permutation(len(convs)) if rng is not None else np.arange(len(convs))
    for start in range(0, len(convs), batch_size):
        yield collate([convs[i] for i in order[start:start + batch_size]])
