"""Synthetic conversational data written in the GCNet layout (the demo's and tests' default).

Each conversation carries a latent state that persists over utterances (a sticky Markov
chain over emotions, or a slowly drifting sentiment score), so context helps. Every modality
sees the state through its own random projection plus independent noise and a per-speaker
offset; the signal strength is highest for text and lowest for visual, so each modality
alone is informative, text most, and fusing them measurably helps.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.patterns import MODALITIES

from .specs import DATASETS, SYNTH_FEATURES, SYNTH_TASK_TO_DATASET


@dataclass
class SynthConfig:
    task: str = "emotion4"  # emotion4 | emotion6 | sentiment
    conversations: int = 150  # enough for a stable 7-condition table in minutes on 2 cores
    min_len: int = 8  # utterances per conversation
    max_len: int = 20
    dims: tuple[int, int, int] = (64, 96, 48)  # audio, text, visual feature dims
    signal: tuple[float, float, float] = (0.15, 0.17, 0.12)  # text most, visual least informative
    stay: float = 0.8  # probability the latent emotion persists to the next utterance
    speaker_offset: float = 0.5  # std of a per-speaker, per-modality nuisance offset
    seed: int = 0


def _emotion_states(rng, n: int, k: int, stay: float) -> np.ndarray:
    states = np.empty(n, np.int64)
    states[0] = rng.integers(k)
    for i in range(1, n):
        states[i] = states[i - 1] if rng.random() < stay else rng.integers(k)
    return states


def _sentiment_states(rng, n: int) -> np.ndarray:
    base = rng.normal(0.0, 1.4)
    drift = np.cumsum(rng.normal(0.0, 0.35, n))  # slow change inside a video
    y = np.clip(base + drift + rng.normal(0.0, 0.3, n), -3, 3)
    y = np.round(y * 5) / 5  # annotator averages come in steps; 0.0 occurs
    return y.astype(np.float64)


def generate(cfg: SynthConfig, out: str | Path) -> Path:
    """Write the dataset under `out` and return that folder."""
    if cfg.task not in SYNTH_TASK_TO_DATASET:
        raise DataError(f"unknown synthetic task {cfg.task!r}; choose {', '.join(SYNTH_TASK_TO_DATASET)}")
    if cfg.conversations < 10:
        raise DataError(f"--conversations must be >= 10 to fill train/val/test, got {cfg.conversations}")
    if len(cfg.dims) != 3 or min(cfg.dims) < 1:
        raise DataError(f"--dims must be three positive ints (audio,text,visual), got {cfg.dims}")
    spec = DATASETS[SYNTH_TASK_TO_DATASET[cfg.task]]
    rng = np.random.default_rng(cfg.seed)
    out = Path(out)
    feat_dirs = {m: out / "features" / name for m, name in zip(MODALITIES, SYNTH_FEATURES)}
    for d in feat_dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    k = spec.num_classes
    # Emotion: one prototype per class; sentiment: one direction scaled by the score.
    protos = {m: rng.normal(0, 1, (max(k, 1), d)) for m, d in zip(MODALITIES, cfg.dims)}
    signal = dict(zip(MODALITIES, cfg.signal))

    video_ids, video_labels, video_speakers, video_sentences = {}, {}, {}, {}
    for c in range(cfg.conversations):
        n = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        if spec.task == "emotion":
            session = c % 5 + 1
            vid = f"Ses0{session}{'FM'[c % 2]}_synth{c:03d}"
            speakers = ["F" if i % 2 == 0 else "M" for i in range(n)]
            utts = [f"{vid}_{s}{i:03d}" for i, s in enumerate(speakers)]
            labels = _emotion_states(rng, n, k, cfg.stay)
        else:
            vid = f"synth{c:04d}"
            speakers = [""] * n
            utts = [f"{vid}_{i + 1}" for i in range(n)]
            labels = _sentiment_states(rng, n)
        offsets = {(m, s): rng.normal(0, cfg.speaker_offset, protos[m].shape[1])
                   for m in MODALITIES for s in set(speakers)}
        for i, utt in enumerate(utts):
            for m in MODALITIES:
                if spec.task == "emotion":
                    clean = protos[m][labels[i]]
                else:
                    clean = protos[m][0] * (labels[i] / 1.5)
                x = signal[m] * clean + offsets[(m, speakers[i])] + rng.normal(0, 1, clean.shape)
                np.save(feat_dirs[m] / f"{utt}.npy", x.astype(np.float32))
        video_ids[vid] = utts
        video_labels[vid] = [int(v) for v in labels] if spec.task == "emotion" else [float(v) for v in labels]
        video_speakers[vid] = speakers
        video_sentences[vid] = [f"synthetic utterance {i}" for i in range(n)]

    vids = sorted(video_ids)
    order = rng.permutation(len(vids))
    if spec.has_val_split:
        n_test, n_val = max(1, len(vids) // 5), max(1, len(vids) // 10)
        test = {vids[i] for i in order[:n_test]}
        val = {vids[i] for i in order[n_test:n_test + n_val]}
        train = set(vids) - test - val
        payload = [video_ids, video_labels, video_speakers, video_sentences, train, val, test]
    else:  # IEMOCAP convention: session 5 is the distributed test set
        test = {v for v in vids if v[4] == "5"}
        payload = [video_ids, video_labels, video_speakers, video_sentences, set(vids) - test, test]
    with (out / spec.pickle_names[0]).open("wb") as fh:
        pickle.dump(payload, fh, protocol=4)
    meta = {"generator": "anymodal.synth", "dataset": spec.name, "features": list(SYNTH_FEATURES),
            **asdict(cfg)}
    (out / "synth.json").write_text(json.dumps(meta, indent=2))
    return out
