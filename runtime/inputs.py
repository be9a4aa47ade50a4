"""Turning a predict() request into graph feeds, or a typed error naming what was wrong."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .patterns import MODALITIES, MODALITY_NAMES, parse_pattern

MASKED = "masked"


@dataclass
class Request:
    graph: str  # a pattern name, or "masked" when availability varies inside the request
    feeds: dict[str, np.ndarray]
    batched: bool  # False: the caller gave [L, dim] arrays and gets unbatched outputs
    modalities: tuple[str, ...]  # modalities whose outputs are reported
    mask: np.ndarray | None = None  # [B, L] bool, real utterances (utterance-level models)
    avail: np.ndarray | None = None  # [B, L, 3] bool (utterance-level models)


def _as_features(m: str, x, dim: int, float_dtype: str) -> np.ndarray:
    name = MODALITY_NAMES[m]
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name}: dtype {arr.dtype} cannot be used as features (expected float)")
    if arr.ndim not in (2, 3):
        raise InputError(f"{name}: expected [L, {dim}] or [B, L, {dim}], got shape {arr.shape}")
    if arr.shape[-1] != dim:
        raise InputError(f"{name}: feature dim {arr.shape[-1]}, the model expects {dim} "
                         f"(shape {arr.shape})")
    if arr.shape[-2] == 0 or (arr.ndim == 3 and arr.shape[0] == 0):
        raise InputError(f"{name}: empty sequence (shape {arr.shape})")
    return arr.astype(float_dtype, copy=False)


def single_modality(key: str, what: str) -> str:
    m = parse_pattern(key)
    if len(m) != 1:
        raise InputError(f"{what}: key {key!r} names more than one modality")
    return m


def present_mask(m: str, value, shape: tuple[int, int]) -> np.ndarray:
    """A caller's availability mask for modality m: bool [L] (one sample) or [B, L] -> [B, L]."""
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        raise InputError(f"present[{MODALITY_NAMES[m]}]: expected a bool array, got {arr.dtype}")
    if arr.shape == shape[1:]:
        arr = arr[None]
    if arr.shape != shape:
        raise InputError(f"present[{MODALITY_NAMES[m]}]: shape {np.asarray(value).shape}, "
                         f"expected [L] or [B, L] = {shape}")
    return arr


def _present_masks(present, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in (present or {}).items():
        m = single_modality(key, "present")
        out[m] = present_mask(m, value, shape)
    return out


def given_features(dims: dict[str, int], float_dtype: str, audio, text, visual):
    """The modalities given, checked and cast, as batched arrays.
    -> ({m: [B, L, dim]}, whether the caller batched them)"""
    given = {m: x for m, x in zip(MODALITIES, (audio, text, visual)) if x is not None}
    if not given:
        raise InputError("all modalities are absent: give at least one of audio, text, visual")
    feats = {m: _as_features(m, x, dims[m], float_dtype) for m, x in given.items()}
    ranks = {f.ndim for f in feats.values()}
    if len(ranks) > 1:
        raise InputError("modalities mix batched [B, L, dim] and unbatched [L, dim] arrays: "
                         + ", ".join(f"{MODALITY_NAMES[m]} {f.shape}" for m, f in feats.items()))
    batched = ranks == {3}
    if not batched:
        feats = {m: f[None] for m, f in feats.items()}
    return feats, batched


def build_request(dims: dict[str, int], float_dtype: str, audio=None, text=None, visual=None,
                  present=None, lengths=None) -> Request:
    feats, batched = given_features(dims, float_dtype, audio, text, visual)
    shapes = {f.shape[:2] for f in feats.values()}
    if len(shapes) > 1:
        raise InputError("modalities disagree on batch/sequence length: "
                         + ", ".join(f"{MODALITY_NAMES[m]} {f.shape}" for m, f in feats.items()))
    B, L = shapes.pop()

    mask = np.ones((B, L), bool)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer) \
                or lengths.min() < 1 or lengths.max() > L:
            raise InputError(f"lengths: expected {B} integers in 1..{L}, got {lengths.tolist()}")
        mask = np.arange(L)[None] < lengths[:, None]

    avail = np.zeros((B, L, len(MODALITIES)), bool)
    pres = _present_masks(present, (B, L))
    for m in pres:
        if m not in feats:
            raise InputError(f"present[{MODALITY_NAMES[m]}] given but no {MODALITY_NAMES[m]} array")
    for i, m in enumerate(MODALITIES):
        if m in feats:
            avail[..., i] = pres.get(m, True) & mask
    for m, f in feats.items():  # NaN/Inf only matter where the sensor reported data
        bad = ~np.isfinite(f).all(axis=-1) & avail[..., MODALITIES.index(m)]
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise InputError(f"{MODALITY_NAMES[m]}: NaN or Inf at batch {b}, utterance {t}")

    real = avail[mask]  # [n_real, 3]
    if not real.any():
        raise InputError("every modality is marked absent for every utterance")
    constant = (real == real[:1]).all()
    if constant:
        pattern = "".join(m for i, m in enumerate(MODALITIES) if real[0, i])
        if mask.all():
            feeds = {MODALITY_NAMES[m]: feats[m] for m in pattern}
        else:  # padding is never attended, but 0·NaN would still poison the sums: zero it
            feeds = {MODALITY_NAMES[m]: np.where(mask[..., None], feats[m], 0).astype(float_dtype)
                     for m in pattern}
        feeds["mask"] = mask
        return Request(pattern, feeds, batched, tuple(pattern), mask, avail)
    if not real.any(axis=1).all():
        raise InputError("some utterances have every modality absent; drop them or give a modality")
    feeds = {MODALITY_NAMES[m]: feats[m] if m in feats else np.zeros((B, L, dims[m]), float_dtype)
             for m in MODALITIES}
    for m in feats:  # absent entries are never read by the graph; zero them so NaN can't travel
        feeds[MODALITY_NAMES[m]] = np.where(avail[..., MODALITIES.index(m), None],
                                            feats[m], 0).astype(float_dtype)
    feeds["mask"], feeds["avail"] = mask, avail
    return Request(MASKED, feeds, batched, tuple(feats), mask, avail)
