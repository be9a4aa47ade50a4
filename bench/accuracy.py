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
                    batch_size: int = 16, precision: str | None = None) -> dict:
    from anymodal.train.data.batching import collate  # numpy-only, like the reader
    from anymodal.train.data.gcnet import read_gcnet

    rt = Runtime(bundle, backend=backend, precision=precision)
    if rt.family.dataset_layout == "mmsa":  # samples with missing-rate tables, not conversations
        return sequence_accuracy_report(rt, data, split, batch_size)
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


def _sequence_scores(rt: Runtime, s, pattern: str, avail: dict | None, batch_size: int) -> np.ndarray:
    """Scores of a sequence model through the runtime, the same requests a client would send."""
    out = []
    for i in range(0, len(s), batch_size):
        idx = np.arange(i, min(i + batch_size, len(s)))
        kw = {MODALITY_NAMES[m]: s.feats[m][idx] for m in pattern}
        lengths = {m: s.masks[m][idx].sum(axis=1) for m in pattern}
        present = None if avail is None else {m: avail[m][idx] for m in pattern}
        out.append(rt.predict(**kw, lengths=lengths, present=present).scores)
    return np.concatenate(out)


def sequence_accuracy_report(rt: Runtime, data, split: str, batch_size: int) -> dict:
    """DERL: the inter-modal table (7 conditions) and the intra-modal table (missing rates,
    the same draws as `rt-eval`), served by the runtime."""
    from anymodal.train.data.missing import EVAL_SEED, RATES, average, rate_avail  # numpy-only
    from anymodal.train.data.mmsa import read_mmsa

    key = {"val": "valid"}.get(split, split)
    sets = read_mmsa(data)
    if key not in sets:
        raise DataError(f"no {split!r} split in an MMSA pickle (has train, valid, test)")
    s = sets[key]
    conditions = {p: sentiment_metrics(s.labels, _sequence_scores(rt, s, p, None, batch_size))
                  for p in ALL_PATTERNS}
    rates = {f"{r:.1f}": sentiment_metrics(
        s.labels, _sequence_scores(rt, s, "atv", rate_avail(s.masks, r, EVAL_SEED + i), batch_size))
        for i, r in enumerate(RATES)}
    info = rt.bundle.manifest.get("data") or {}
    return {"dataset": info.get("dataset"), "task": "sentiment", "split": split, "backend": rt.backend_name,
            "conditions": conditions, "rates": rates, "rates_average": average(list(rates.values()))}


def int8_delta_lines(bundle: str | Path) -> list[str]:
    """The int8 variant's recorded accuracy delta vs fp32 per condition (validation split)."""
    from anymodal.runtime.bundle import Bundle

    int8 = Bundle(bundle).manifest["variants"].get("int8")
    if not int8:
        return []
    acc = int8.get("accuracy") or {}
    worst = max(int8.get("max_logit_difference", {}).values(), default=float("nan"))
    if not acc.get("measured"):
        return [f"int8 variant: accuracy not measured ({acc.get('reason', 'no record')}); "
                f"max logit difference vs fp32 {worst:.3g}"]
    deltas = ", ".join(f"{{{','.join(c)}}} {v['delta_points']:+.2f}" for c, v in acc["conditions"].items())
    return [f"int8 vs fp32 on {acc['split']} ({acc['metric'].upper()}, points): {deltas}; "
            f"max logit difference {worst:.3g}"]
