"""The MMSA layout (docs/ARCHITECTURE.md §5; used by DERL/LNLN for MOSI and MOSEI): one pickle holding
`train`, `valid`, `test` dicts of sequence-level features.

    text [N, 50, 768] (BERT features)  or  text_bert [N, 3, 50] (ids / attention mask / segments)
    audio [N, T_a, D_a]  vision [N, T_v, D_v]  audio_lengths  vision_lengths
    regression_labels [N]  id [N]  raw_text [N]
`-inf` in audio becomes 0 (as MMSA does); any other non-finite value, a label outside [-3, 3],
an empty split, lengths that disagree with the arrays or a missing field is a DataError naming
the file, split, sample id and field. Text lengths come from the `text_bert` attention
mask when present (BERT outputs at padding positions are not zero), else all 50 are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.patterns import MODALITIES

from .safe_pickle import safe_load_pickle

SPLITS = ("train", "valid", "test")
FEATURE_KEYS = {"a": "audio", "t": "text", "v": "vision"}
LENGTH_KEYS = {"a": "audio_lengths", "v": "vision_lengths"}


@dataclass
class SequenceSet:
    """One split of sequence-level samples. feats[m] [N, T_m, D_m] float32 (zero padded);
    masks[m] [N, T_m] bool (real tokens); labels [N] float32 in [-3, 3]; ids [N]."""
    feats: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "SequenceSet":
        """Samples `idx`, each modality trimmed to the longest real sequence among them."""
        feats, masks = {}, {}
        for m in MODALITIES:
            mask = self.masks[m][idx]
            T = max(int(mask.sum(axis=1).max()), 1)
            feats[m], masks[m] = self.feats[m][idx, :T], mask[:, :T]
        return SequenceSet(feats, masks, self.labels[idx], [self.ids[i] for i in idx])

    @property
    def dims(self) -> tuple[int, int, int]:
        return tuple(self.feats[m].shape[-1] for m in MODALITIES)  # type: ignore[return-value]


SENTIMENT_RANGE = (-3.0, 3.0)  # CMU-MOSI/MOSEI annotation scale


def _array(split: dict, key: str, where: str) -> np.ndarray:
    if key not in split:
        raise DataError(f"{where}: missing field {key!r} (has {', '.join(sorted(map(str, split)))})")
    try:
        return np.asarray(split[key])
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise DataError(f"{where}.{key}: not a rectangular array ({exc})") from None


def _first_bad(ok: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(~ok)[0])


def _lengths_mask(split: dict, key: str, n: int, T: int, ids: list[str], where: str) -> np.ndarray:
    lengths = _array(split, key, where)
    if lengths.shape != (n,) or not (np.issubdtype(lengths.dtype, np.integer)
                                     or np.issubdtype(lengths.dtype, np.floating)):
        raise DataError(f"{where}.{key}: expected {n} numbers (one per sample), got "
                        f"{lengths.dtype} {lengths.shape}")
    ok = np.isfinite(lengths) & (np.mod(lengths, 1) == 0) & (lengths >= 0) & (lengths <= T)
    if not ok.all():
        i = _first_bad(ok)[0]
        raise DataError(f"{where}.{key}: sample {ids[i]!r} has length {lengths[i]}, expected an "
                        f"integer in 0..{T}")
    return np.arange(T)[None] < lengths.astype(np.int64)[:, None]


def _features(split: dict, key: str, n: int, ids: list[str], where: str) -> np.ndarray:
    x = _array(split, key, where)
    if x.ndim != 3 or x.shape[0] != n or not np.issubdtype(x.dtype, np.floating) or 0 in x.shape:
        raise DataError(f"{where}.{key}: expected float [{n}, T, dim], got {x.dtype} {x.shape}")
    x = x.astype(np.float32)
    if key == FEATURE_KEYS["a"]:
        x[np.isneginf(x)] = 0.0  # MMSA's COVAREP audio features contain -inf (MMSA sets them to 0)
    ok = np.isfinite(x)
    if not ok.all():
        i, t, d = _first_bad(ok)
        raise DataError(f"{where}.{key}: sample {ids[i]!r} has {x[i, t, d]} at token {t}, column {d}")
    return x


def _labels(split: dict, where: str) -> np.ndarray:
    raw = _array(split, "regression_labels", where)
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise DataError(f"{where}.regression_labels: expected numbers, got {raw.dtype}")
    if raw.ndim > 2 or (raw.ndim == 2 and raw.shape[1] != 1):
        raise DataError(f"{where}.regression_labels: expected [N] or [N, 1], got {raw.shape}")
    labels = raw.astype(np.float32).reshape(-1)
    if len(labels) == 0:
        raise DataError(f"{where}: the split is empty (no samples)")
    return labels


def _check_label_range(labels: np.ndarray, ids: list[str], where: str) -> None:
    lo, hi = SENTIMENT_RANGE
    ok = np.isfinite(labels) & (labels >= lo) & (labels <= hi)
    if not ok.all():
        i = _first_bad(ok)[0]
        raise DataError(f"{where}.regression_labels: sample {ids[i]!r} has label {labels[i]}, expected "
                        f"a number in [{lo:g}, {hi:g}]")


def _ids(split: dict, n: int, where: str) -> list[str]:
    ids = _array(split, "id", where)
    if ids.shape != (n,):
        raise DataError(f"{where}.id: expected {n} ids (one per label), got shape {ids.shape}")
    return [str(i) for i in ids]


def _text_mask(bert, n: int, T: int, where: str) -> np.ndarray:
    bert = np.asarray(bert)
    if bert.ndim != 3 or bert.shape[:2] != (n, 3) or bert.shape[2] < T:
        raise DataError(f"{where}.text_bert: expected [{n}, 3, >={T}] ids/mask/segments, got {bert.shape}")
    return bert[:, 1, :T] > 0


def read_split(split: dict, where: str, text_encoder=None) -> SequenceSet:
    if not isinstance(split, dict):
        raise DataError(f"{where}: expected a dict of fields, got {type(split).__name__}")
    labels = _labels(split, where)
    n = len(labels)
    ids = _ids(split, n, where)
    _check_label_range(labels, ids, where)
    if text_encoder is not None:
        if "text_bert" not in split:
            raise DataError(f"{where}: --text-encoder given but the split has no 'text_bert' ids")
        from .text_encoder import encode_text_bert

        split = {**split, "text": encode_text_bert(split["text_bert"], text_encoder)}
    elif "text" not in split and "text_bert" in split:
        raise DataError(f"{where}: has only 'text_bert' token ids; pass --text-encoder DIR (a local "
                        "BERT-style encoder folder) or use a pickle with precomputed 'text' features")
    feats, masks = {}, {}
    for m in MODALITIES:
        feats[m] = _features(split, FEATURE_KEYS[m], n, ids, where)
        T = feats[m].shape[1]
        if m == "t":
            bert = split.get("text_bert")
            masks[m] = _text_mask(bert, n, T, where) if bert is not None else np.ones((n, T), bool)
        else:
            masks[m] = _lengths_mask(split, LENGTH_KEYS[m], n, T, ids, where)
        empty = ~masks[m].any(axis=1)
        if empty.any():  # a sample with no real token cannot be encoded; make it one zero frame
            masks[m][empty, 0] = True
    return SequenceSet(feats, masks, labels, ids)


def read_mmsa(path: str | Path, text_encoder: str | Path | None = None) -> dict[str, SequenceSet]:
    """{train, valid, test} from an MMSA pickle (or a folder holding exactly one .pkl).
    text_encoder: a local BERT-style encoder folder; its outputs on `text_bert` replace `text`."""
    path = Path(path)
    if path.is_dir():
        pkls = sorted(path.glob("*.pkl"))
        if len(pkls) != 1:
            raise DataError(f"{path}: expected one MMSA .pkl file, found {[p.name for p in pkls]}")
        path = pkls[0]
    data = safe_load_pickle(path)
    if not isinstance(data, dict) or any(s not in data for s in SPLITS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not an MMSA pickle — expected a dict with {', '.join(SPLITS)}, got {got}")
    encoder = None
    if text_encoder is not None:
        from .text_encoder import load_encoder

        encoder = load_encoder(text_encoder)
    sets = {s: read_split(data[s], f"{path}[{s}]", encoder) for s in SPLITS}
    dims = {s: v.dims for s, v in sets.items()}
    if len(set(dims.values())) > 1:
        raise DataError(f"{path}: feature dims differ between splits: {dims}")
    return sets
