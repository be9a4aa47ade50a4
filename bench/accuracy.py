"""`rt-report accuracy`: the 7-condition table computed through the Runtime (what is served),
on the held-out split recorded in the bundle. Torch-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymodal.runtime import Runtime
from anymodal.runtime.errors import DataError
from anymodal.runtime.metrics import emotion_metrics, sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES


def _batches(convs, size):
    for i in range(0, len(convs), size):
        chunk = convs[i:i + size]
        L = max(len(c) for c in chunk)
        feats = {}
        for m in MODALITIES:
            arr = np.zeros((len(chunk), L, chunk[0].features[m].shape[1]), np.float32)
            for b, c in enumerate(chunk):
                arr[b, :len(c)] = c.features[m]
            feats[m] = arr
        yield chunk, feats, np.array([len(c) for c in chunk])


def accuracy_report(bundle: str | Path, data: str | Path, split: str = "test", backend: str = "auto",
                    batch_size: int = 16) -> dict:
    from anymodal.train.data.gcnet import read_gcnet  # numpy-only reader

    rt = Runtime(bundle, backend=backend)
    info = rt.bundle.manifest.get("data") or {}
    if not info.get("dataset") or not info.get("features"):
        raise DataError(f"{bundle}: the manifest records no training dataset/features to evaluate on")
    ds = read_gcnet(data, info["dataset"], tuple(info["features"]))
    splits = info.get("splits") or {}
    if split not in splits:
        raise DataError(f"{bundle}: no {split!r} split recorded (has {', '.join(splits) or 'none'})")
    convs = ds.split_by(splits[split])
    conditions = {}
    for pattern in ALL_PATTERNS:
        preds, labels = [], []
        for chunk, feats, lengths in _batches(convs, batch_size):
            kwargs = {MODALITY_NAMES[m]: feats[m] for m in pattern}
            p = rt.predict(**kwargs, lengths=lengths)
            out = p.probs.argmax(-1) if p.probs is not None else p.scores
            for b, c in enumerate(chunk):
                preds.append(out[b, :len(c)])
                labels.append(c.labels)
        y, yp = np.concatenate(labels), np.concatenate(preds)
        conditions[pattern] = emotion_metrics(y, yp) if rt.bundle.task == "emotion" else sentiment_metrics(y, yp)
    return {"dataset": info["dataset"], "task": rt.bundle.task, "split": split, "backend": rt.backend_name,
            "conditions": conditions}
