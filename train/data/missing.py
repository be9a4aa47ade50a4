"""Random intra-modal missingness (DERL §3.3, following LNLN): a sample's modality loses a
fraction of its real tokens; padding is never touched.

Training (`training_avail`): each epoch, half of the samples are picked; each of their
modalities drops a fraction drawn from U(0, 1), fresh every epoch. Evaluation
(`rate_avail`): every sample and modality drops the same fraction r (r = 0.0 … 0.9).
"""

from __future__ import annotations

import numpy as np

from anymodal.runtime.patterns import MODALITIES

RATES = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 … 0.9; 1.0 (nothing left) is ill-posed
EVAL_SEED = 1234  # evaluation draws are fixed, so rt-eval and rt-report score the same tokens


def drop_tokens(mask: np.ndarray, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mask [B, T] bool (real tokens); rates [B] in [0, 1] -> avail [B, T] bool: round(rate · n_real)
    real tokens of each row, chosen uniformly, are marked missing; padding stays False."""
    avail = mask.copy()
    for b in range(mask.shape[0]):
        real = np.flatnonzero(mask[b])
        k = int(round(float(rates[b]) * len(real)))
        if k:
            avail[b, rng.choice(real, size=k, replace=False)] = False
    return avail


def training_avail(masks: dict[str, np.ndarray], rng: np.random.Generator,
                   fraction: float = 0.5) -> dict[str, np.ndarray]:
    """Availability for one training epoch over a whole split (masks[m] [N, T_m])."""
    n = next(iter(masks.values())).shape[0]
    picked = np.zeros(n, bool)
    picked[rng.permutation(n)[:int(round(fraction * n))]] = True
    out = {}
    for m in MODALITIES:
        rates = np.where(picked, rng.random(n), 0.0)
        out[m] = drop_tokens(masks[m], rates, rng)
    return out


def rate_avail(masks: dict[str, np.ndarray], rate: float, seed: int) -> dict[str, np.ndarray]:
    """Availability at one evaluation missing rate, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    n = next(iter(masks.values())).shape[0]
    return {m: drop_tokens(masks[m], np.full(n, rate), rng) for m in MODALITIES}


def average(tables: list[dict]) -> dict:
    """Metric-wise mean of several metric dicts (the intra-modal 'average over rates' row)."""
    return {k: float(np.mean([t[k] for t in tables])) for k in tables[0]}
