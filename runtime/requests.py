"""One request pipeline for every model family: validate what the caller gave, once.

A request is the caller's arrays for the modalities that reported data, plus optional
`lengths` (real items per sample) and `present` (per-item availability). The family's input
kind (runtime/families/utterances.py, sequences.py) says how lengths are given and checked;
every other check is the same for every kind.

An *item* is one position of a modality's array (the kind's `item`: an utterance, a token). Everything wrong is a RequestError (a ValueError) naming
the argument and what was expected; nothing is guessed or silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PatternError, RequestError
from .patterns import MODALITIES, MODALITY_NAMES, parse_pattern

MASKED = "masked"
NONFINITE_POLICIES = ("error", "absent")
_FLOATS = (np.float16, np.float32, np.float64)


class _once:
    """functools.cached_property without the lock Python < 3.12 takes on every first access
    (measurable on the request path): computed on first read, then a plain instance attribute."""

    def __init__(self, fn):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


# All-True masks (and their per-sample counts) by shape, shared read-only: a request without
# `lengths` needs no new array for its masks (np.ones costs tens of µs right after a graph run,
# when numpy's code is out of the caches). Bounded: cleared when it holds _FULL_MAX shapes.
_FULL: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_FULL_MAX = 256


def _full(B: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    entry = _FULL.get((B, T))
    if entry is None:
        if len(_FULL) >= _FULL_MAX:
            _FULL.clear()
        mask, counts = np.ones((B, T), bool), np.full(B, T)
        mask.flags.writeable = counts.flags.writeable = False
        entry = _FULL[(B, T)] = (mask, counts)
    return entry


def full_mask(B: int, T: int) -> np.ndarray:
    """[B, T] bool, all True (every item real), read-only and shared by every request of that shape."""
    return _full(B, T)[0]


@dataclass
class Request:
    """A validated request. Arrays are batched; absent/padding entries of features are zero."""

    input_kind: Any  # the family's InputKind (runtime/families/input_kind.py)
    features: dict[str, np.ndarray]  # m -> [B, T_m, D_m] in the bundle's float dtype (given modalities)
    mask: dict[str, np.ndarray]  # m -> [B, T_m] bool: real items (within lengths)
    present: dict[str, np.ndarray]  # m -> [B, T_m] bool: items the model uses (subset of mask)
    batched: bool  # False: the caller gave unbatched arrays and gets unbatched outputs
    nonfinite: dict[str, np.ndarray] = field(default_factory=dict)  # m -> [B, T_m] made absent (NaN/Inf)
    # every item of every given modality is real and used (no lengths, present or nonfinite
    # exclusions): the common request, whose masks need no further look
    complete: bool = False

    # pattern and graph are read several times per request (graph choice, decoding, the
    # Prediction): computed once. A Request is not modified after build_request returns it.
    @_once
    def pattern(self) -> str:
        """Modalities with at least one item present, in canonical order."""
        return "".join(m for m in MODALITIES if m in self.present and (self.complete or self.present[m].any()))

    @_once
    def graph(self) -> str:
        """The pattern's specialised graph when every real item of each used modality is present
        (and unused ones are absent everywhere), else the masked graph."""
        uniform = all(self.present[m] is self.mask[m] or (self.present[m] == self.mask[m]).all()
                      for m in self.pattern)
        return self.pattern if uniform else MASKED

    @property
    def batch(self) -> int:
        return next(iter(self.features.values())).shape[0]

    @property
    def lengths(self) -> dict[str, np.ndarray]:
        if self.complete:  # every mask all True: the shared read-only counts, no reduction
            return {m: _full(*k.shape)[1] for m, k in self.mask.items()}
        counts = {id(k): k.sum(axis=1) for k in self.mask.values()}  # utterances: one shared mask
        return {m: counts[id(k)] for m, k in self.mask.items()}


def all_finite(x: np.ndarray) -> bool:
    """No NaN or Inf anywhere in x: the common-case check, over the whole array at once (callers
    locate the bad items only when it fails). numpy's SIMD isfinite (no FP warnings), then a
    zero byte searched in its bytes: measured right after a cache flush, the bytes search
    costs less than numpy's `all` reduction (whose machinery is then out of the caches), and
    one-pass sum or min/max reductions cost more than both."""
    return 0 not in np.isfinite(x).tobytes()


def _name(m: str) -> str:
    return MODALITY_NAMES[m]


def _modality_key(key, what: str) -> str:
    if not isinstance(key, str):
        raise RequestError(f"{what}: keys must be modality names (audio, text, visual), got {key!r}")
    try:
        m = parse_pattern(key)
    except PatternError as exc:
        raise RequestError(f"{what}: {exc}") from None
    if len(m) != 1:
        raise RequestError(f"{what}: key {key!r} names more than one modality")
    return m


def _array(value, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if not isinstance(value, (list, tuple)) and not hasattr(value, "__array__"):
        raise RequestError(f"{what}: expected a numpy array, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise RequestError(f"{what}: not convertible to an array ({exc})") from None


def _features(m: str, value, dim: int) -> np.ndarray:
    arr = _array(value, _name(m))
    if arr.dtype.type not in _FLOATS:
        raise RequestError(f"{_name(m)}: dtype {arr.dtype}; expected float16, float32 or float64 features")
    if arr.ndim not in (2, 3):
        raise RequestError(f"{_name(m)}: expected [L, {dim}] or [B, L, {dim}], got shape {arr.shape}")
    if arr.shape[-1] != dim:
        raise RequestError(f"{_name(m)}: feature dim {arr.shape[-1]}, the model expects {dim} (shape {arr.shape})")
    if arr.ndim == 3 and arr.shape[0] == 0:
        raise RequestError(f"{_name(m)}: batch of 0 samples (shape {arr.shape})")
    if arr.shape[-2] == 0:
        raise RequestError(f"{_name(m)}: empty sequence (shape {arr.shape}); leave an absent sensor out (None)")
    return arr


def lengths_mask(value, B: int, T: int, batched: bool, what: str) -> np.ndarray:
    """[B] int lengths in 1..T (one sample: an int is fine) -> [B, T] bool mask of real items."""
    arr = np.asarray(value) if isinstance(value, (int, np.integer)) else _array(value, what)
    if not batched and arr.ndim == 0:
        arr = arr[None]
    if arr.dtype.type is np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise RequestError(f"{what}: expected integers, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise RequestError(f"{what}: expected shape ({B},) (one length per sample), got {arr.shape}")
    if arr.min() < 1 or arr.max() > T:
        raise RequestError(f"{what}: expected lengths in 1..{T}, got {arr.tolist()}")
    return np.arange(T)[None] < arr[:, None]


def _present(m: str, value, shape: tuple[int, int]) -> np.ndarray:
    what = f"present[{_name(m)}]"
    arr = _array(value, what)
    if arr.dtype != np.bool_:
        raise RequestError(f"{what}: expected a bool array, got dtype {arr.dtype}")
    if arr.shape == shape[1:]:
        arr = arr[None]
    if arr.shape != shape:
        raise RequestError(f"{what}: shape {np.shape(value)}, expected [T] or [B, T] = {shape}")
    return arr


def per_modality(arg, what: str) -> dict:
    if arg is None:
        return {}
    if not isinstance(arg, dict):
        raise RequestError(f"{what}: expected a dict modality -> array, got {type(arg).__name__}")
    out = {}
    for key, value in arg.items():
        m = _modality_key(key, what)
        if m in out:
            raise RequestError(f"{what}: {_name(m)} given twice")
        out[m] = value
    return out


def build_request(input_kind, dims: dict[str, int], float_dtype, arrays: dict,
                  present=None, lengths=None, nonfinite: str = "error") -> Request:
    """Validate a request for a family of `input_kind` (an InputKind). arrays: {m: array or None};
    None = sensor absent. float_dtype: the bundle's float dtype (a name or a numpy dtype)."""
    if nonfinite not in NONFINITE_POLICIES:
        raise RequestError(f"nonfinite: expected one of {', '.join(NONFINITE_POLICIES)}, got {nonfinite!r}")
    # a dtype object, not a name: comparing an array's dtype to a name parses the name each time
    want = float_dtype if isinstance(float_dtype, np.dtype) else np.dtype(float_dtype)
    given = {m: _features(m, x, dims[m]) for m, x in arrays.items() if x is not None}
    if not given:
        raise RequestError("all modalities are absent: give at least one of audio, text, visual")
    ranks = {x.ndim for x in given.values()}
    if len(ranks) > 1:
        raise RequestError("modalities mix batched [B, L, dim] and unbatched [L, dim] arrays: "
                           + ", ".join(f"{_name(m)} {x.shape}" for m, x in given.items()))
    batched = ranks == {3}
    feats = given if batched else {m: x[None] for m, x in given.items()}
    if len({f.shape[0] for f in feats.values()}) > 1:
        raise RequestError("modalities disagree on the batch size: "
                           + ", ".join(f"{_name(m)} {x.shape}" for m, x in given.items()))

    mask = input_kind.masks(feats, lengths, batched)  # m -> [B, T_m] real items

    pres = per_modality(present, "present")
    for m in pres:
        if m not in feats:
            raise RequestError(f"present[{_name(m)}] given but no {_name(m)} array")
    used = {m: mask[m] & _present(m, pres[m], mask[m].shape) if m in pres else mask[m] for m in feats}
    all_real = lengths is None  # the masks are all True: no padding anywhere

    bad_items = {}
    for m, f in feats.items():  # cast first: float64 beyond float16's range becomes Inf
        if f.dtype is not want and f.dtype != want:  # (the common request needs no cast: no errstate)
            with np.errstate(over="ignore", invalid="ignore"):
                f = feats[m] = f.astype(want)
        if not all_finite(f):  # rare: locate the bad items
            bad = ~np.isfinite(f).all(axis=-1) & used[m]  # NaN/Inf matter only where used
            if bad.any():
                if nonfinite == "error":
                    b, t = np.argwhere(bad)[0]
                    raise RequestError(f"{_name(m)}: NaN or Inf (after conversion to {want}) at batch "
                                       f"{b}, {input_kind.item} {t}; pass nonfinite='absent' to treat such "
                                       "items as absent")
                bad_items[m] = bad
                used[m] = used[m] & ~bad
        if not (all_real and used[m] is mask[m]) and not used[m].all():
            # padding/absent items are never read by the graph: zero them so NaN can't travel
            feats[m] = np.where(used[m][..., None], f, 0).astype(want)

    every_real_used = all(used[m] is mask[m] for m in feats)  # no present/nonfinite exclusions
    req = Request(input_kind, feats, mask, used, batched, bad_items, all_real and every_real_used)
    if not req.pattern:
        raise RequestError("nothing present: every modality is absent for every item after present/nonfinite")
    if every_real_used:  # every real item is used, and every sample has at least one (lengths >= 1)
        return req
    input_kind.check_covered(mask, used)
    return req
