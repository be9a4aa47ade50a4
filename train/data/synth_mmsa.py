"""Synthetic sentiment data written in the MMSA layout (DERL's default data for tests/demo).

Every sample has a sentiment score y in [-3, 3]. Each real token of each modality carries a
weak view of y along a modality-specific direction plus unit noise, so a sequence is only
informative in aggregate: dropping tokens (intra-modal missingness) measurably hurts, and
a modality's strength is its per-token signal times the square root of its length. Text is
the strongest, visual the weakest. Sequences have random real lengths with zero padding.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.patterns import MODALITIES

PICKLE_NAME = "unaligned_50.pkl"
# MOSI as distributed by MMSA: (length, dim) of audio, text, visual
MOSI_SHAPES = ((375, 5), (50, 768), (500, 20))


@dataclass
class MmsaSynthConfig:
    samples: int = 600  # split 60/15/25 into train/valid/test
    shapes: tuple = MOSI_SHAPES  # (T, D) per modality, audio/text/visual
    signal: tuple[float, float, float] = (0.12, 0.5, 0.06)  # per-token SNR: text >> audio > visual
    seed: int = 0


def parse_shapes(spec: str) -> tuple:
    """'375x5,50x768,500x20' -> ((375, 5), (50, 768), (500, 20))"""
    try:
        shapes = tuple(tuple(int(v) for v in part.lower().split("x")) for part in spec.split(","))
    except ValueError:
        shapes = ()
    if len(shapes) != 3 or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise DataError(f"--dims for the mmsa layout: three LENxDIM items audio,text,visual "
                        f"(e.g. 375x5,50x768,500x20), got {spec!r}")
    return shapes


def _labels(rng, n: int) -> np.ndarray:
    y = np.clip(rng.normal(0.0, 1.5, n), -3, 3)
    return (np.round(y * 3) / 3).astype(np.float32)  # annotator averages of 3 come in thirds


def _split(rng, n: int, shapes, signal, dirs) -> dict:
    y = _labels(rng, n)
    out = {"regression_labels": y, "classification_labels": np.sign(y).astype(np.float32),
           "id": np.array([f"synth{rng.integers(1 << 30):09d}$_${i}" for i in range(n)]),
           "raw_text": np.array([f"synthetic sample {i}" for i in range(n)])}
    for m, key, (T, D) in zip(MODALITIES, ("audio", "text", "vision"), shapes):
        lengths = rng.integers(max(1, T // 4), T + 1, size=n)
        x = rng.normal(0, 1, (n, T, D)).astype(np.float32)
        x += (signal[m] * (y / 1.5))[:, None, None] * dirs[m][None, None, :]
        x[np.arange(T)[None] >= lengths[:, None]] = 0.0  # zero padding
        out[key] = x
        if m == "t":
            ids = np.zeros((n, 3, T), np.int64)
            mask = np.arange(T)[None] < lengths[:, None]
            ids[:, 0] = np.where(mask, rng.integers(1000, 30000, (n, T)), 0)
            ids[:, 1] = mask
            out["text_bert"] = ids
        else:
            out[f"{key}_lengths"] = [int(v) for v in lengths]
    return out


def generate_mmsa(cfg: MmsaSynthConfig, out: str | Path) -> Path:
    if cfg.samples < 20:
        raise DataError(f"--samples must be >= 20 to fill train/valid/test, got {cfg.samples}")
    rng = np.random.default_rng(cfg.seed)
    dirs = {}
    for m, (_, D) in zip(MODALITIES, cfg.shapes):
        v = rng.normal(0, 1, D)
        dirs[m] = (v / np.linalg.norm(v)).astype(np.float32)  # unit: SNR per token = signal
    signal = dict(zip(MODALITIES, cfg.signal))
    n_valid, n_test = int(cfg.samples * 0.15), int(cfg.samples * 0.25)
    sizes = {"train": cfg.samples - n_valid - n_test, "valid": n_valid, "test": n_test}
    data = {s: _split(rng, n, cfg.shapes, signal, dirs) for s, n in sizes.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / PICKLE_NAME).open("wb") as fh:
        pickle.dump(data, fh, protocol=4)
    meta = {"generator": "anymodal.synth", "layout": "mmsa", **asdict(cfg)}
    (out / "synth.json").write_text(json.dumps(meta, indent=2))
    return out
