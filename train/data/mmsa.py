"""The MMSA layout (DESIGN §5; used by DERL/LNLN for MOSI and MOSEI): one pickle holding
`train`, `valid`, `test` dicts of sequence-level features.

    text [N, 50, 768] (BERT features)  or  text_bert [N, 3, 50] (ids / attention mask / segments)
    audio [N, T_a, D_a]  vision [N, T_v, D_v]  audio_lengths  vision_lengths
    regression_labels [N]  id [N]  raw_text [N]
`-inf` in audio becomes 0 (as MMSA does). Text lengths come from the `text_bert` attention
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


def _lengths_mask(lengths, n: int, T: int, where: str) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.shape != (n,):
        raise DataError(f"{where}: expected {n} lengths, got shape {lengths.shape}")
    if lengths.min() < 0 or lengths.max() > T:
        raise DataError(f"{where}: lengths must be in 0..{T}, got {lengths.min()}..{lengths.max()}")
    return np.arange(T)[None] < lengths[:, None]


def _features(split: dict, key: str, n: int, where: str) -> np.ndarray:
    if key not in split:
        raise DataError(f"{where}: missing field {key!r} (has {', '.join(sorted(split))})")
    x = np.asarray(split[key])
    if x.ndim != 3 or x.shape[0] != n or not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}.{key}: expected float [{n}, T, dim], got {x.dtype} {x.shape}")
    x = x.astype(np.float32)
    x[np.isneginf(x)] = 0.0  # MMSA's COVAREP features contain -inf
    if not np.isfinite(x).all():
        raise DataError(f"{where}.{key}: NaN or +inf values")
    return x


def read_split(split: dict, where: str, text_encoder=None) -> SequenceSet:
    if "regression_labels" not in split:
        raise DataError(f"{where}: missing field 'regression_labels'")
    labels = np.asarray(split["regression_labels"], dtype=np.float32).reshape(-1)
    n = len(labels)
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
        feats[m] = _features(split, FEATURE_KEYS[m], n, where)
        T = feats[m].shape[1]
        if m == "t":
            bert = split.get("text_bert")
            masks[m] = (np.asarray(bert)[:, 1, :T] > 0) if bert is not None else np.ones((n, T), bool)
        else:
            if LENGTH_KEYS[m] not in split:
                raise DataError(f"{where}: missing field {LENGTH_KEYS[m]!r}")
            masks[m] = _lengths_mask(split[LENGTH_KEYS[m]], n, T, f"{where}.{LENGTH_KEYS[m]}")
        empty = ~masks[m].any(axis=1)
        if empty.any():  # a sample with no real token cannot be encoded; make it one zero frame
            masks[m][empty, 0] = True
    ids = [str(i) for i in split.get("id", range(n))]
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
    sets = {s: read_split(data[s], f"{path.name}[{s}]", encoder) for s in SPLITS}
    dims = {s: v.dims for s, v in sets.items()}
    if len(set(dims.values())) > 1:
        raise DataError(f"{path}: feature dims differ between splits: {dims}")
    return sets
