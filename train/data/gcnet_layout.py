"""The GCNet layout: folders of conversations (IEMOCAP / MOSI / MOSEI, data/gcnet.py), one
label per utterance, scored under the 7 availability conditions (paper Table 2) on the split
the run recorded. Input kind: utterances."""

from __future__ import annotations

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.families import UTTERANCES
from anymodal.runtime.metrics import emotion_metrics, sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

from .layout import DatasetLayout, conditions_table


def _split(info: dict, split: str, where) -> list:
    splits = info.get("splits") or {}
    if split not in splits:
        raise DataError(f"{where}: no {split!r} split recorded (has {', '.join(splits) or 'none'})")
    return splits[split]


class GCNetLayout(DatasetLayout):
    name = "gcnet"
    input_kind = UTTERANCES

    def synth(self, out, task, conversations, samples, dims, seed):
        from .synth import SynthConfig, generate

        try:
            d = tuple(int(x) for x in (dims or "64,96,48").split(","))
        except ValueError:
            raise DataError(f"--dims must be three integers audio,text,visual, got {dims!r}") from None
        path = generate(SynthConfig(task=task, conversations=conversations, dims=d, seed=seed), out)
        return f"wrote synthetic {task} data ({conversations} conversations) to {path}"

    def read(self, data, info: dict):
        from .gcnet import read_gcnet

        if not info.get("dataset") or not info.get("features"):
            raise DataError("the run/bundle records no training dataset/features to read")
        return read_gcnet(data, info["dataset"], tuple(info["features"]))

    def evaluate_model(self, model, config, data, split):
        from ..evaluate import evaluate_conditions

        d = config["data"]
        convs = self.read(data or d["root"], d).split_by(_split(d, split, "the run"))
        conditions = evaluate_conditions(model, convs)
        return {"dataset": d["dataset"], "task": d["task"], "split": split, "conditions": conditions,
                "tables": [conditions_table(conditions)]}

    def evaluate_runtime(self, rt, data, split, batch_size):
        from .batching import collate

        info = rt.bundle.manifest.get("data") or {}
        convs = self.read(data, info).split_by(_split(info, split, rt.bundle.path))
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
                "conditions": conditions, "tables": [conditions_table(conditions)]}

    def calibration_samples(self, info, root, limit):
        train = (info.get("splits") or {}).get("train")
        if not train or not info.get("dataset") or not info.get("features"):
            raise DataError("the manifest records no training split (data.dataset, data.features, "
                            "data.splits.train): re-export from the run folder")
        convs = self.read(root(), info).split_by(train)[:limit]
        return (f"train split of {info['dataset']} ({len(train)} conversations)",
                [{m: np.asarray(c.features[m], np.float32) for m in MODALITIES} for c in convs])


GCNET = GCNetLayout()
