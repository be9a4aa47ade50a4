"""Reader for the GCNet layout used by MoMKE (IEMOCAP, CMU-MOSI, CMU-MOSEI), docs/ARCHITECTURE.md §5.

    <root>/<label pickle>
    <root>/features/<feature name>/<utterance id>.npy      vector, or [T, dim] averaged over T
    <root>/features/<feature name>/<utterance id>/*.npy     per-frame files, averaged; IEMOCAP
                                                            face folders hold compress_F/_M.npy
                                                            and the utterance uses its speaker's
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

from .conversations import Conversation, ConversationDataset
from .safe_pickle import safe_load_pickle
from .specs import DatasetSpec, get_spec


def find_label_pickle(root: Path, spec: DatasetSpec) -> Path:
    for name in spec.pickle_names:
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob("*.pkl"))
    if len(found) == 1:
        return found[0]
    raise DataError(
        f"{root}: no label pickle for {spec.name} (expected {' or '.join(spec.pickle_names)}"
        + (f"; found several: {', '.join(p.name for p in found)}" if found else "") + ")"
    )


def _speaker_files(folder: Path, speaker: str) -> list[Path]:
    """Per-speaker files in an IEMOCAP face folder (compress_F.npy / compress_M.npy)."""
    files = sorted(folder.glob("*.npy"))
    tagged = [f for f in files if f.stem[-1:] in ("F", "M")]
    if tagged and len(tagged) == len(files):
        if speaker not in ("F", "M"):  # averaging both speakers' faces would be silent garbage
            raise DataError(f"{folder}: per-speaker files ({', '.join(f.name for f in files)}) but the "
                            f"utterance's speaker is {speaker!r}, not F or M (field 'speakers')")
        own = [f for f in tagged if f.stem.endswith(speaker)]
        if not own:
            raise DataError(f"{folder}: no feature file for speaker {speaker!r}")
        return own
    return files


def _load_array(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0 or arr.shape[0] == 0:
        raise DataError(f"{path}: expected a non-empty vector or [T, dim] array, got shape {arr.shape}")
    arr = arr.astype(np.float64).reshape(-1, arr.shape[-1])  # [T, dim]
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        raise DataError(f"{path}: feature contains NaN or Inf (first at frame {bad[0][0]}, "
                        f"column {bad[0][1]}: {arr[tuple(bad[0])]})")
    return arr


def load_utterance_feature(feature_dir: Path, utt: str, speaker: str) -> np.ndarray:
    """One utterance's feature vector [dim], averaged over frames / per-frame files."""
    file, folder = feature_dir / f"{utt}.npy", feature_dir / utt
    if file.is_file():
        frames = _load_array(file)
    elif folder.is_dir():
        parts = [_load_array(f) for f in _speaker_files(folder, speaker)]
        if not parts:
            raise DataError(f"{folder}: folder holds no .npy files")
        dims = {p.shape[1] for p in parts}
        if len(dims) != 1:
            raise DataError(f"{folder}: frame files disagree on dim: {sorted(dims)}")
        frames = np.concatenate(parts, axis=0)
    else:
        raise DataError(f"missing feature file for utterance {utt!r}: {file} (or folder {folder})")
    vec = frames.mean(axis=0)
    with np.errstate(over="ignore"):  # finite float64 frames can overflow float32: refused below
        vec32 = vec.astype(np.float32)
    if not np.all(np.isfinite(vec32)):
        raise DataError(f"{file if file.is_file() else folder}: feature overflows float32")
    return vec32


SENTIMENT_RANGE = (-3.0, 3.0)  # CMU-MOSI/MOSEI annotation scale


def _as_labels(values, spec: DatasetSpec, where: str) -> np.ndarray:
    """Labels of one conversation: emotion ints in 0..C-1, sentiment floats in [-3, 3]."""
    try:
        arr = np.asarray([np.asarray(v).item() for v in _as_list(values, where)], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: labels must be numbers, one per utterance ({exc})") from None
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise DataError(f"{where}: label of utterance {bad[0]} is {arr[bad[0]]}")
    if spec.task == "emotion":
        wrong = np.flatnonzero((np.mod(arr, 1) != 0) | (arr < 0) | (arr >= spec.num_classes))
        if len(wrong):
            raise DataError(f"{where}: label of utterance {wrong[0]} is {arr[wrong[0]]}, expected an "
                            f"integer class in 0..{spec.num_classes - 1}")
        return arr.astype(np.int64)
    lo, hi = SENTIMENT_RANGE
    wrong = np.flatnonzero((arr < lo) | (arr > hi))
    if len(wrong):
        raise DataError(f"{where}: label of utterance {wrong[0]} is {arr[wrong[0]]}, outside the "
                        f"sentiment range [{lo:g}, {hi:g}]")
    return arr.astype(np.float32)


def _as_list(values, where: str) -> list:
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise DataError(f"{where}: expected a list, got {type(values).__name__}")
    return list(values)


def _as_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a dict keyed by conversation id, got {type(value).__name__}")
    return value


def read_gcnet(root: str | Path, dataset: str, features: tuple[str, str, str]) -> ConversationDataset:
    """Read a GCNet-layout folder. `features` = (audio, text, visual) feature folder names.

    Splits follow the pickle: MOSI/MOSEI train/val/test; IEMOCAP train/test (validation and
    leave-one-session-out folds are derived by `anymodal.train.data.splits`).
    """
    root = Path(root)
    spec = get_spec(dataset)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    if len(features) != 3:
        raise DataError(f"expected 3 feature names (audio,text,visual), got {features}")
    pkl = find_label_pickle(root, spec)
    data = safe_load_pickle(pkl)
    want = 7 if spec.has_val_split else 6
    if not isinstance(data, (list, tuple)) or len(data) < want:
        raise DataError(f"{pkl}: expected a list of {want} items for {spec.name}, got "
                        f"{type(data).__name__} of length {len(data) if hasattr(data, '__len__') else '?'}")
    video_ids = _as_dict(data[0], f"{pkl}: item 0 (utterance ids)")
    video_labels = _as_dict(data[1], f"{pkl}: item 1 (labels)")
    video_speakers = _as_dict(data[2], f"{pkl}: item 2 (speakers)")
    split_sets = ({"train": data[4], "val": data[5], "test": data[6]} if spec.has_val_split
                  else {"train": data[4], "test": data[5]})
    for name, ids in split_sets.items():
        if len(_as_list(ids, f"{pkl}: {name} split")) == 0:
            raise DataError(f"{pkl}: the {name} split is empty")
    if not video_ids:
        raise DataError(f"{pkl}: no conversations")

    feature_dirs = {}
    for m, name in zip(MODALITIES, features):
        d = root / "features" / name
        if not d.is_dir():
            raise DataError(f"feature folder not found for modality {m}: {d}")
        feature_dirs[m] = d

    convs: dict[str, Conversation] = {}
    dims: dict[str, int] = {}
    first_file: dict[str, str] = {}
    for vid in sorted(video_ids, key=str):
        where = f"{pkl}: conversation {vid!r}"
        utts = [str(u) for u in _as_list(video_ids[vid], f"{where} field 'ids'")]
        if not utts:
            raise DataError(f"{where} field 'ids': no utterances")
        if vid not in video_labels:
            raise DataError(f"{where} field 'labels': missing (the conversation has utterances but no labels)")
        labels = _as_labels(video_labels[vid], spec, f"{where} field 'labels'")
        speakers = [str(s) for s in _as_list(video_speakers.get(vid, [""] * len(utts)),
                                             f"{where} field 'speakers'")]
        if len(labels) != len(utts) or len(speakers) != len(utts):
            raise DataError(f"{where}: {len(utts)} utterances, {len(labels)} labels and {len(speakers)} "
                            "speakers — one of each per utterance expected")
        feats = {}
        for m, d in feature_dirs.items():
            rows = []
            for utt, spk in zip(utts, speakers):
                try:
                    vec = load_utterance_feature(d, utt, spk[:1])
                except DataError as exc:
                    raise DataError(f"{where}, utterance {utt!r}, field {MODALITY_NAMES[m]!r}: {exc}") from None
                if m not in dims:
                    dims[m], first_file[m] = vec.shape[0], utt
                elif vec.shape[0] != dims[m]:
                    raise DataError(
                        f"{d}: utterance {utt!r} has dim {vec.shape[0]} but {first_file[m]!r} "
                        f"has {dims[m]} (modality {m})")
                rows.append(vec)
            feats[m] = np.stack(rows)  # [L, dim]
        convs[vid] = Conversation(vid, utts, feats, labels, speakers)

    splits = {}
    for name, ids in split_sets.items():
        unknown = [v for v in ids if v not in convs]
        if unknown:
            raise DataError(f"{pkl}: {name} split names videos without utterances: {unknown[:5]}")
        splits[name] = sorted(ids)
    return ConversationDataset(spec, dict(zip(MODALITIES, features)), dims, convs, splits)
