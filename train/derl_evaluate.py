"""DERL evaluation (paper §4.4): the intra-modal table (every modality loses a fraction r of
its tokens, r = 0.0 … 0.9, and the average over rates) and the inter-modal table (the 7
availability conditions; an absent modality is the model's absent-sensor input)."""

from __future__ import annotations

import numpy as np
import torch

from anymodal.runtime.metrics import sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES

from .data.missing import EVAL_SEED, RATES, average, rate_avail
from .data.mmsa import SequenceSet


def batch_args(s: SequenceSet, idx: np.ndarray, avail: dict | None):
    """Torch inputs of DERL.forward for samples idx, each modality trimmed to its longest real
    sequence. avail None = every real token observed. -> (xs, masks, avails) dicts of tensors"""
    sub = s.subset(idx)
    xs, masks, avails = {}, {}, {}
    for m in MODALITIES:
        T = sub.masks[m].shape[1]
        xs[m] = torch.from_numpy(sub.feats[m])
        masks[m] = torch.from_numpy(sub.masks[m])
        avails[m] = masks[m] if avail is None else torch.from_numpy(avail[m][idx, :T])
    return xs, masks, avails


def forward_args(xs: dict, masks: dict, avails: dict) -> list[torch.Tensor]:
    return [xs[m] for m in MODALITIES] + [masks[m] for m in MODALITIES] + [avails[m] for m in MODALITIES]


def absent_sensors(model, xs: dict, masks: dict, avails: dict, pattern: str) -> None:
    """Replace the modalities not in `pattern` by the absent-sensor input (in place)."""
    B = next(iter(xs.values())).shape[0]
    for m in MODALITIES:
        if m not in pattern:
            x, mask, avail = model.absent_input(m, B)
            xs[m], masks[m], avails[m] = x, mask, avail


@torch.no_grad()
def predict_scores(model, s: SequenceSet, avail: dict | None = None, pattern: str = "atv",
                   batch_size: int = 128) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(s), batch_size):
        idx = np.arange(start, min(start + batch_size, len(s)))
        xs, masks, avails = batch_args(s, idx, avail)
        absent_sensors(model, xs, masks, avails, pattern)
        score, _ = model(*forward_args(xs, masks, avails))
        out.append(score[:, 0].numpy())
    return np.concatenate(out)


def evaluate_rate(model, s: SequenceSet, rate: float, seed: int = EVAL_SEED) -> dict:
    preds = predict_scores(model, s, rate_avail(s.masks, rate, seed))
    return sentiment_metrics(s.labels, preds)


def evaluate_derl(model, s: SequenceSet) -> dict:
    rates = {f"{r:.1f}": evaluate_rate(model, s, r, EVAL_SEED + i) for i, r in enumerate(RATES)}
    conditions = {p: sentiment_metrics(s.labels, predict_scores(model, s, pattern=p)) for p in ALL_PATTERNS}
    return {"conditions": conditions, "rates": rates, "rates_average": average(list(rates.values()))}
