"""`rt-report accuracy`: the 7-condition table computed through the Runtime (what is served),
on the held-out split recorded in the bundle. Torch-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anymodal.runtime import Runtime
from anymodal.runtime.errors import DataError
from anymodal.runtime.metrics import emotion_metrics, sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITY_NAMES


def accuracy_report(bundle: str | Path, data: str | Path, split: str = "test", backend: str = "auto",
                    batch_size: int = 16) -> dict:
    from anymodal.train.data.batching import collate  # numpy-only, like the reader
    from anymodal.train.data.gcnet import read_gcnet

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
        for i in range(0, len(convs), batch_size):
            batch = collate(convs[i:i + batch_size])  # zero-padded [B, L, dim] + mask
            p = rt.predict(**{MODALITY_NAMES[m]: batch.features[m] for m in pattern},
                           lengths=batch.mask.sum(axis=1))
            out = p.probs.argmax(-1) if p.probs is not None else p.scores
            preds.append(out[batch.mask])
            labels.append(batch.labels[batch.mask])
        y, yp = np.concatenate(labels), np.concatenate(preds)
        conditions[pattern] = emotion_metrics(y, yp) if rt.bundle.task == "emotion" else sentiment_metrics(y, yp)
    return {"dataset": info["dataset"], "task": rt.bundle.task, "split": split, "backend": rt.backend_name,
            "conditions": conditions}
