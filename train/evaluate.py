"""Evaluation of a trained model under the 7 availability conditions (paper Table 2)."""

from __future__ import annotations

import numpy as np
import torch

from anymodal.runtime.metrics import emotion_metrics, sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .data.batching import Batch, iterate_batches
from .data.conversations import Conversation


def batch_tensors(batch: Batch, pattern_avail: np.ndarray | None = None):
    """Torch inputs of the masked model. pattern_avail [B, 3] bool per conversation."""
    feats = [torch.from_numpy(batch.features[m]) for m in MODALITIES]
    mask = torch.from_numpy(batch.mask)
    if pattern_avail is None:
        pattern_avail = np.ones((batch.mask.shape[0], 3), bool)
    avail = torch.from_numpy(pattern_avail)[:, None, :].expand(-1, batch.mask.shape[1], -1)
    return feats, mask, avail


def pattern_row(pattern: str) -> np.ndarray:
    return np.array([m in pattern for m in MODALITIES])


@torch.no_grad()
def predict(model, convs: list[Conversation], pattern: str, batch_size: int = 32):
    """Per-utterance predictions and labels, concatenated over conversations.
    Emotion -> class ids; sentiment -> scores."""
    model.eval()
    preds, labels = [], []
    for batch in iterate_batches(convs, batch_size, rng=None):
        feats, mask, avail = batch_tensors(batch, np.tile(pattern_row(pattern), (len(batch.mask), 1)))
        logits, _ = model(*feats, mask, avail)
        out = logits.argmax(-1) if model.cfg.task == "emotion" else logits[..., 0]
        preds.append(out[mask].numpy())
        labels.append(batch.labels[batch.mask])
    return np.concatenate(preds), np.concatenate(labels)


def score(task: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return emotion_metrics(labels, preds) if task == "emotion" else sentiment_metrics(labels, preds)


def evaluate_conditions(model, convs: list[Conversation], patterns=ALL_PATTERNS) -> dict[str, dict]:
    return {p: score(model.cfg.task, *predict(model, convs, p)) for p in patterns}


def primary_metric(task: str, metrics: dict[str, float]) -> float:
    """Higher is better: WA for emotion, -MAE for sentiment (used for epoch selection)."""
    return metrics["wa"] if task == "emotion" else -metrics["mae"]
