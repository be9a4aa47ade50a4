"""RouterMix in numpy: the single source of truth for the fused kernel (docs/ARCHITECTURE.md §8).

For rows n: h = GELU(x[n] @ w1 + b1); logits = h @ w2 + b2; weights = softmax(logits / τ);
mixed[n] = mask[n] · Σ_e weights[n, e] · experts[n, e, :].
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as torch.nn.GELU() and the exported graphs compute it."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def router_mix_reference(x, w1, b1, w2, b2, experts, temperature: float, row_mask):
    """x [N, d]; w1 [d, d]; b1 [d]; w2 [d, E]; b2 [E]; experts [N, E, do]; row_mask [N]
    -> mixed [N, do], weights [N, E]; computed in float64."""
    x, w1, b1, w2, b2, experts = (np.asarray(a, np.float64) for a in (x, w1, b1, w2, b2, experts))
    h = gelu(x @ w1 + b1)  # [N, d]
    logits = (h @ w2 + b2) / temperature  # [N, E]
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    mixed = np.einsum("ne,ned->nd", w, experts) * np.asarray(row_mask, np.float64)[:, None]
    return mixed, w
