"""The MMSA layout: one pickle of train/valid/test samples (MOSI / MOSEI, data/mmsa.py), one
sentiment score per sample, scored with LNLN's protocol: the intra-modal table (every modality
loses a fraction r of its tokens, r = 0.0 … 0.9, then the average) and the inter-modal table
(the 7 availability conditions). Input kind: sequences."""

from __future__ import annotations

import numpy as np

from anymodal.runtime.errors import DataError
from anymodal.runtime.families import SEQUENCES
from anymodal.runtime.metrics import sentiment_metrics
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

from .layout import DatasetLayout, conditions_table, table


def _split_set(sets: dict, split: str):
    key = {"val": "valid"}.get(split, split)
    if key not in sets:
        raise DataError(f"no {split!r} split in an MMSA pickle (has train, valid, test)")
    return sets[key]


def _result(info_dataset, split: str, res: dict) -> dict:
    tables = [table("intra-modal missing", "missing rate", res["rates"], res["rates_average"]),
              conditions_table(res["conditions"])]  # intra-modal first, as in the paper
    return {"dataset": info_dataset, "task": "sentiment", "split": split, **res, "tables": tables}


class MMSALayout(DatasetLayout):
    name = "mmsa"
    input_kind = SEQUENCES

    def synth(self, out, task, conversations, samples, dims, seed):
        from .synth_mmsa import MOSI_SHAPES, MmsaSynthConfig, generate_mmsa, parse_shapes

        shapes = parse_shapes(dims) if dims else MOSI_SHAPES
        path = generate_mmsa(MmsaSynthConfig(samples=samples, shapes=shapes, seed=seed), out)
        return f"wrote synthetic sentiment data ({samples} samples, MMSA layout) to {path}"

    def evaluate_model(self, model, config, data, split):
        from ..derl_evaluate import evaluate_derl
        from .mmsa import read_mmsa

        d = config["data"]
        s = _split_set(read_mmsa(data or d["root"], d.get("text_encoder")), split)
        return _result(d["dataset"], split, evaluate_derl(model, s))

    def evaluate_runtime(self, rt, data, split, batch_size):
        """The same tables as evaluate_model, the same missing-token draws, served by the Runtime."""
        from .missing import EVAL_SEED, RATES, average, rate_avail
        from .mmsa import read_mmsa

        s = _split_set(read_mmsa(data), split)
        conditions = {p: sentiment_metrics(s.labels, _scores(rt, s, p, None, batch_size)) for p in ALL_PATTERNS}
        rates = {f"{r:.1f}": sentiment_metrics(
            s.labels, _scores(rt, s, "atv", rate_avail(s.masks, r, EVAL_SEED + i), batch_size))
            for i, r in enumerate(RATES)}
        res = _result((rt.bundle.manifest.get("data") or {}).get("dataset"), split,
                      {"conditions": conditions, "rates": rates, "rates_average": average(list(rates.values()))})
        return {**res, "backend": rt.backend_name}

    def calibration_samples(self, info, root, limit):
        from .mmsa import read_mmsa

        if not info.get("dataset"):
            raise DataError("the manifest records no training split (data.dataset): re-export from the run folder")
        s = read_mmsa(root())["train"]
        n = min(limit, len(s))
        samples = [{m: np.asarray(s.feats[m][i][s.masks[m][i]], np.float32) for m in MODALITIES} for i in range(n)]
        return f"train split of {info['dataset']} ({len(s)} samples)", samples


def _scores(rt, s, pattern: str, avail: dict | None, batch_size: int) -> np.ndarray:
    """Scores through the runtime, the same requests a client would send."""
    out = []
    for i in range(0, len(s), batch_size):
        idx = np.arange(i, min(i + batch_size, len(s)))
        kw = {MODALITY_NAMES[m]: s.feats[m][idx] for m in pattern}
        lengths = {m: s.masks[m][idx].sum(axis=1) for m in pattern}
        present = None if avail is None else {m: avail[m][idx] for m in pattern}
        out.append(rt.predict(**kw, lengths=lengths, present=present).scores)
    return np.concatenate(out)


MMSA = MMSALayout()
