"""predict() requests for sequence-level models (DERL): one sample is a sequence of tokens per
modality, each modality with its own length. Turned into graph feeds, or a typed error.

    specialised graph <pattern>: <modality> [B, T_m, D_m] and <modality>_mask [B, T_m] for the
                                 present modalities (absent ones are folded constants)
    masked graph:                all three + <modality>_mask + <modality>_avail [B, T_m]; used when
                                 some tokens of a given modality are missing (`present=`)
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .inputs import MASKED, Request, given_features, present_mask, single_modality
from .patterns import MODALITIES, MODALITY_NAMES


def _per_modality(arg, what: str) -> dict[str, object]:
    if arg is None:
        return {}
    if not isinstance(arg, dict):
        raise InputError(f"{what}: expected a dict modality -> array for a sequence model, got {type(arg).__name__}")
    return {single_modality(key, what): value for key, value in arg.items()}


def _token_mask(m: str, lengths, B: int, T: int) -> np.ndarray:
    if lengths is None:
        return np.ones((B, T), bool)
    arr = np.asarray(lengths).reshape(-1)
    if arr.shape != (B,) or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 1 or arr.max() > T:
        raise InputError(f"lengths[{MODALITY_NAMES[m]}]: expected {B} integers in 1..{T}, "
                         f"got {np.asarray(lengths).tolist()}")
    return np.arange(T)[None] < arr[:, None]


def build_sequence_request(dims: dict[str, int], absent_lengths: dict[str, int], float_dtype: str,
                           audio=None, text=None, visual=None, present=None, lengths=None) -> Request:
    feats, batched = given_features(dims, float_dtype, audio, text, visual)
    batches = {f.shape[0] for f in feats.values()}
    if len(batches) > 1:
        raise InputError("modalities disagree on the batch size: "
                         + ", ".join(f"{MODALITY_NAMES[m]} {f.shape}" for m, f in feats.items()))
    B = batches.pop()
    lens, pres = _per_modality(lengths, "lengths"), _per_modality(present, "present")
    for m in set(lens) | set(pres):
        if m not in feats:
            raise InputError(f"lengths/present for {MODALITY_NAMES[m]} given but no {MODALITY_NAMES[m]} array")
    masks, avails = {}, {}
    for m, f in feats.items():
        masks[m] = _token_mask(m, lens.get(m), B, f.shape[1])
        avails[m] = masks[m] & (present_mask(m, pres[m], masks[m].shape) if m in pres else True)
        bad = ~np.isfinite(f).all(axis=-1) & avails[m]  # NaN/Inf only matter where observed
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise InputError(f"{MODALITY_NAMES[m]}: NaN or Inf at batch {b}, token {t}")
        if not avails[m].all():  # padding/missing tokens are never read; zero them so NaN can't travel
            feats[m] = np.where(avails[m][..., None], f, 0).astype(float_dtype)
    pattern = "".join(m for m in MODALITIES if m in feats)
    if all((avails[m] == masks[m]).all() for m in feats):  # every real token observed
        names = [MODALITY_NAMES[m] for m in pattern]
        req = {n: feats[m] for n, m in zip(names, pattern)}
        req.update({f"{n}_mask": masks[m] for n, m in zip(names, pattern)})
        return Request(pattern, req, batched, tuple(pattern))
    feeds = masked_sequence_feeds(dims, absent_lengths, float_dtype, feats, masks, avails)
    return Request(MASKED, feeds, batched, tuple(pattern))


def masked_sequence_feeds(dims: dict[str, int], absent_lengths: dict[str, int], float_dtype: str,
                          feats: dict, masks: dict, avails: dict) -> dict[str, np.ndarray]:
    """Feeds of the masked graph, in its input order. feats/masks/avails hold the given
    modalities ([B, T_m, D_m], [B, T_m], [B, T_m]); an absent one becomes its all-missing
    input at the model's absent length."""
    B = next(iter(feats.values())).shape[0]
    req = {}
    for m in MODALITIES:
        n, T = MODALITY_NAMES[m], absent_lengths[m]
        req[n] = feats.get(m, np.zeros((B, T, dims[m]), float_dtype))
        req[f"{n}_mask"] = masks.get(m, np.ones((B, T), bool))
        req[f"{n}_avail"] = avails.get(m, np.zeros((B, T), bool))
    return {MODALITY_NAMES[m] + s: req[MODALITY_NAMES[m] + s] for s in ("", "_mask", "_avail") for m in MODALITIES}
