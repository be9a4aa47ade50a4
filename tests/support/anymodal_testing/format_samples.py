"""Writers of tiny datasets in the distributed GCNet format, quirks included (the test suite's
own copy of ../shared/fixtures/format-samples, which a user's clone does not have):
label pickles written the numpy-1 way (`numpy.core.multiarray`), sentences as numpy string
arrays, float64 labels, splits as sets; features as vectors, [T, dim] and [1, dim] arrays,
float64 files, and IEMOCAP face folders with compress_F.npy / compress_M.npy."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def numpy1_pickle(obj, path: Path) -> None:
    """Pickle with protocol 2 (GLOBAL opcodes) and rename numpy 2's module to numpy 1's."""
    raw = pickle.dumps(obj, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(raw)


def write_mosi_sample(root: Path, dims=(5, 10, 8), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    vids = {"vidA": 3, "vidB": 4, "vidC": 2, "vidD": 3, "vidE": 5}
    ids, labels, speakers, sentences = {}, {}, {}, {}
    names = ("wav2vec-sample-UTT", "deberta-sample-UTT", "manet-sample-UTT")
    for n in names:
        (root / "features" / n).mkdir(parents=True, exist_ok=True)
    for v, n in vids.items():
        utts = [f"{v}_{i + 1}" for i in range(n)]
        ids[v] = utts
        lab = [np.float64(0.0)] + [np.float64(x) for x in np.round(rng.uniform(-3, 3, n - 1), 1)]
        labels[v], speakers[v] = lab, [""] * n
        sentences[v] = np.array([f"SAMPLE SENTENCE {i}" for i in range(n)])
        for j, u in enumerate(utts):
            np.save(root / "features" / names[0] / f"{u}.npy", rng.normal(size=dims[0]).astype(np.float32))
            np.save(root / "features" / names[1] / f"{u}.npy",
                    rng.normal(size=dims[1]).astype(np.float64 if j % 2 else np.float32))
            np.save(root / "features" / names[2] / f"{u}.npy",
                    rng.normal(size=(j + 2, dims[2])).astype(np.float32))  # [T, dim]
    payload = [ids, labels, speakers, sentences, {"vidA", "vidB", "vidC"}, {"vidD"}, {"vidE"}]
    numpy1_pickle(payload, root / "CMUMOSI_features_raw_2way.pkl")
    return root


def write_iemocap_sample(root: Path, dims=(6, 10, 8), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    ids, labels, speakers, sentences = {}, {}, {}, {}
    names = ("wav2vec-sample-UTT", "deberta-sample-UTT", "manet-sample-UTT")
    for n in names:
        (root / "features" / n).mkdir(parents=True, exist_ok=True)
    for s in range(1, 6):
        for g in "FM":
            v = f"Ses0{s}{g}_impro0{s}"
            spk = ["F", "M", "F", "M", "F"]
            utts = [f"{v}_{p}{i:03d}" for i, p in enumerate(spk)]
            ids[v], speakers[v] = utts, spk
            labels[v] = [int(x) for x in rng.integers(0, 4, len(utts))]
            sentences[v] = [f"Sample line {i}." for i in range(len(utts))]
            for u in utts:
                np.save(root / "features" / names[0] / f"{u}.npy", rng.normal(size=(1, dims[0])).astype(np.float32))
                np.save(root / "features" / names[1] / f"{u}.npy", rng.normal(size=(1, dims[1])).astype(np.float32))
                face = root / "features" / names[2] / u
                face.mkdir()
                np.save(face / "compress_F.npy", np.full(dims[2], 1.0, np.float32))
                np.save(face / "compress_M.npy", np.full(dims[2], -1.0, np.float32))
    test = {v for v in ids if v[4] == "5"}
    numpy1_pickle([ids, labels, speakers, sentences, set(ids) - test, test],
                  root / "IEMOCAP_features_raw_4way.pkl")
    return root


SAMPLE_FEATURES = ("wav2vec-sample-UTT", "deberta-sample-UTT", "manet-sample-UTT")


def write_mmsa_sample(path: Path, n=(5, 3, 3), shapes=((30, 5), (12, 16), (40, 7)), seed=0) -> Path:
    """An MMSA pickle as distributed: numpy-1 pickle, float32 arrays, `-inf` in audio,
    lengths as lists, `text_bert` [N, 3, T] ids/mask/segments, string ids and raw text."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, k in zip(("train", "valid", "test"), n):
        (Ta, Da), (Tt, Dt), (Tv, Dv) = shapes
        audio = rng.normal(0, 1, (k, Ta, Da)).astype(np.float32)
        audio[0, 0, 0] = -np.inf
        tl = rng.integers(3, Tt + 1, k)
        bert = np.zeros((k, 3, Tt), np.int64)
        bert[:, 1] = np.arange(Tt)[None] < tl[:, None]
        bert[:, 0] = bert[:, 1] * 2000
        data[split] = {
            "raw_text": np.array([f"text {i}" for i in range(k)]),
            "audio": audio, "vision": rng.normal(0, 1, (k, Tv, Dv)).astype(np.float32),
            "id": np.array([f"vid{i}$_${i}" for i in range(k)]),
            "text": rng.normal(0, 1, (k, Tt, Dt)).astype(np.float32), "text_bert": bert,
            "audio_lengths": [int(v) for v in rng.integers(1, Ta + 1, k)],
            "vision_lengths": [int(v) for v in rng.integers(1, Tv + 1, k)],
            "annotations": np.array(["Positive"] * k),
            "classification_labels": np.ones(k, np.float32),
            "regression_labels": rng.uniform(-3, 3, k).astype(np.float32),
        }
    numpy1_pickle(data, path)
    return path
