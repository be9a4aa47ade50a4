"""Evaluation metrics in numpy (docs/ARCHITECTURE.md §11), importable without torch.

Sentiment (MOSI/MOSEI) follows the MMSA conventions that MoMKE and DERL report:
* Acc-2 *has0*: truth `y >= 0` vs prediction `p >= 0`, over all samples.
* Acc-2 *non0*: samples with `y == 0` dropped, then `y > 0` vs `p > 0`.
* Acc-5 / Acc-7: clip to [-2, 2] / [-3, 3], then `np.round` (round half to even, as MMSA).
Emotion (IEMOCAP): WA = accuracy, UA = mean per-class recall over classes present in the
truth, F1 = support-weighted F1.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError


def _as_1d(name: str, x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise InputError(f"{name}: no samples to score")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or Inf")
    return arr


def _check_same_length(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape:
        raise InputError(f"truth has {y_true.size} samples but predictions have {y_pred.size}")


def accuracy(y_true, y_pred) -> float:
    yt, yp = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    _check_same_length(yt, yp)
    if yt.size == 0:
        raise InputError("accuracy: no samples to score")
    return float(np.mean(yt == yp))


def weighted_f1(y_true, y_pred) -> float:
    """Per-class F1 averaged with weights = class support in the truth (sklearn 'weighted')."""
    yt, yp = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    _check_same_length(yt, yp)
    if yt.size == 0:
        raise InputError("weighted_f1: no samples to score")
    total = 0.0
    for c in np.unique(yt):
        tp = np.sum((yp == c) & (yt == c))
        fp = np.sum((yp == c) & (yt != c))
        fn = np.sum((yp != c) & (yt == c))
        denom = 2 * tp + fp + fn
        f1 = 0.0 if denom == 0 else 2 * tp / denom
        total += f1 * np.sum(yt == c)
    return float(total / yt.size)


def unweighted_accuracy(y_true, y_pred) -> float:
    """UA: mean recall over the classes that occur in the truth."""
    yt, yp = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    _check_same_length(yt, yp)
    if yt.size == 0:
        raise InputError("unweighted_accuracy: no samples to score")
    recalls = [np.mean(yp[yt == c] == c) for c in np.unique(yt)]
    return float(np.mean(recalls))


def emotion_metrics(y_true, y_pred) -> dict[str, float]:
    """WA, UA, weighted F1 for class labels (ints)."""
    return {
        "wa": accuracy(y_true, y_pred),
        "ua": unweighted_accuracy(y_true, y_pred),
        "f1": weighted_f1(y_true, y_pred),
    }


def pearson(y_true, y_pred) -> float:
    """Pearson correlation; NaN when either side is constant (undefined, never guessed)."""
    yt, yp = _as_1d("truth", y_true), _as_1d("predictions", y_pred)
    _check_same_length(yt, yp)
    if yt.size < 2 or np.std(yt) == 0 or np.std(yp) == 0:
        return math.nan
    return float(np.corrcoef(yt, yp)[0, 1])


def sentiment_metrics(y_true, y_pred) -> dict[str, float]:
    """MAE, Corr, Acc-2/F1 (has0 and non0), Acc-5, Acc-7 for regression scores in [-3, 3]."""
    yt, yp = _as_1d("truth", y_true), _as_1d("predictions", y_pred)
    _check_same_length(yt, yp)
    non0 = yt != 0
    out = {
        "mae": float(np.mean(np.abs(yt - yp))),
        "corr": pearson(yt, yp),
        "acc2_has0": accuracy(yt >= 0, yp >= 0),
        "f1_has0": weighted_f1(yt >= 0, yp >= 0),
        "acc5": accuracy(np.round(np.clip(yt, -2, 2)), np.round(np.clip(yp, -2, 2))),
        "acc7": accuracy(np.round(np.clip(yt, -3, 3)), np.round(np.clip(yp, -3, 3))),
    }
    if non0.any():
        out["acc2_non0"] = accuracy(yt[non0] > 0, yp[non0] > 0)
        out["f1_non0"] = weighted_f1(yt[non0] > 0, yp[non0] > 0)
    else:  # every label is exactly 0: non0 is undefined
        out["acc2_non0"] = out["f1_non0"] = math.nan
    return out


EMOTION_KEYS = ("wa", "ua", "f1")
SENTIMENT_KEYS = ("acc2_non0", "f1_non0", "acc2_has0", "f1_has0", "mae", "corr", "acc5", "acc7")
