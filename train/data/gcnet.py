"""Reader for the GCNet layout used by MoMKE (IEMOCAP, CMU-MOSI, CMU-MOSEI), DESIGN §5.

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
from anymodal.runtime.patterns import MODALITIES

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
    if tagged and len(tagged) == len(files) and speaker in ("F", "M"):
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
    if arr.ndim == 1:
        return arr.astype(np.float64)[None]  # [1, dim]
    if arr.ndim == 2:
        if arr.shape[0] == 0:
            raise DataError(f"{path}: empty [0, dim] array")
        return arr.astype(np.float64)  # [T, dim]
    raise DataError(f"{path}: expected a vector or a [T, dim] array, got shape {arr.shape}")


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
    if not np.all(np.isfinite(vec)):
        raise DataError(f"{file if file.is_file() else folder}: feature contains NaN or Inf")
    return vec.astype(np.float32)


def _as_labels(values, task: str, where: str) -> np.ndarray:
    arr = np.asarray([np.asarray(v).item() for v in values])
    if task == "emotion":
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise DataError(f"{where}: emotion labels must be integers, got {arr[:5]}")
        return arr.astype(np.int64)
    return arr.astype(np.float32)


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
    video_ids, video_labels, video_speakers = data[0], data[1], data[2]
    split_sets = ({"train": data[4], "val": data[5], "test": data[6]} if spec.has_val_split
                  else {"train": data[4], "test": data[5]})

    feature_dirs = {}
    for m, name in zip(MODALITIES, features):
        d = root / "features" / name
        if not d.is_dir():
            raise DataError(f"feature folder not found for modality {m}: {d}")
        feature_dirs[m] = d

    convs: dict[str, Conversation] = {}
    dims: dict[str, int] = {}
    first_file: dict[str, str] = {}
    for vid in sorted(video_ids):
        utts = [str(u) for u in video_ids[vid]]
        if vid not in video_labels:
            raise DataError(f"{pkl}: video {vid!r} has utterances but no labels")
        labels = _as_labels(video_labels[vid], spec.task, f"{pkl}: labels of {vid!r}")
        speakers = [str(s) for s in video_speakers.get(vid, [""] * len(utts))]
        if len(labels) != len(utts) or len(speakers) != len(utts):
            raise DataError(f"{pkl}: video {vid!r} has {len(utts)} utterances, {len(labels)} "
                            f"labels and {len(speakers)} speakers")
        if spec.task == "emotion" and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise DataError(f"{pkl}: labels of {vid!r} outside 0..{spec.num_classes - 1}: {labels}")
        feats = {}
        for m, d in feature_dirs.items():
            rows = []
            for utt, spk in zip(utts, speakers):
                vec = load_utterance_feature(d, utt, spk[:1])
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
