"""Python API behind `rt-train` and `rt-eval`: read data, train, save a run, evaluate a run."""

from __future__ import annotations

from pathlib import Path

import torch
from anymodal.runtime.errors import DataError

from .checkpoint import load_run, save_run
from .data.gcnet import read_gcnet
from .data.specs import SYNTH_FEATURES
from .data.splits import make_splits
from .evaluate import evaluate_conditions
from .models.momke import MoMKE, MoMKEConfig
from .momke_trainer import TrainConfig, train_momke


def parse_features(spec: str | tuple[str, ...] | None) -> tuple[str, str, str]:
    names = SYNTH_FEATURES if spec is None else (
        tuple(s.strip() for s in spec.split(",")) if isinstance(spec, str) else tuple(spec))
    if len(names) != 3 or not all(names):
        raise DataError(f"--features needs three names AUDIO,TEXT,VISUAL, got {spec!r}")
    return names  # type: ignore[return-value]


def load_dataset(data: str | Path, dataset: str, features, fold: int | None, seed: int = 0):
    ds = read_gcnet(data, dataset, parse_features(features))
    splits = make_splits(ds, fold=fold, seed=seed)
    return ds, splits


def _fresh_log(out) -> Path:
    """The run folder's training log, emptied (a re-run into the same folder starts over)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "train_log.jsonl"
    log.unlink(missing_ok=True)
    return log


def train_momke_run(data, dataset: str, out, features=None, fold: int | None = None,
                    model_overrides: dict | None = None, train_cfg: TrainConfig | None = None,
                    progress: bool = True) -> Path:
    """Train MoMKE on a GCNet-layout folder and write the run folder `out`."""
    train_cfg = train_cfg or TrainConfig()
    ds, splits = load_dataset(data, dataset, features, fold, seed=train_cfg.seed)
    overrides = dict(model_overrides or {})
    cfg = MoMKEConfig.preset_config(overrides.pop("preset", "paper"), input_dims=ds.input_dims(),
                                    output_dim=ds.spec.output_dim, task=ds.spec.task, **overrides)
    torch.manual_seed(train_cfg.seed)
    model = MoMKE(cfg)
    log = _fresh_log(out)
    summary = train_momke(model, ds.split_by(splits["train"]), ds.split_by(splits["val"]), train_cfg,
                          log_path=log, progress=progress)
    meta = {
        "data": {"root": str(Path(data).resolve()), "dataset": ds.spec.name, "task": ds.spec.task,
                 "features": list(ds.feature_names.values()), "dims": ds.dims,
                 "labels": list(ds.spec.label_names), "fold": fold, "splits": splits},
        "training": summary,
    }
    save_run(out, model, meta)
    return out


def evaluate_run(run, data=None, split: str = "test") -> dict:
    """The 7-condition table of a run on its own split of the data it was trained on
    (for DERL also the table over intra-modal missing rates)."""
    model, config = load_run(run)
    if config["model"]["kind"] == "derl":
        return evaluate_derl_run(run, data, split, model, config)
    d = config["data"]
    ds = read_gcnet(data or d["root"], d["dataset"], tuple(d["features"]))
    if split not in d["splits"]:
        raise DataError(f"run {run} has no {split!r} split (has {', '.join(d['splits'])})")
    convs = ds.split_by(d["splits"][split])
    return {"dataset": d["dataset"], "task": d["task"], "split": split,
            "conditions": evaluate_conditions(model, convs)}


def train_derl_run(data, out, preset: str = "mosi", model_overrides: dict | None = None,
                   train_cfg=None, progress: bool = True, text_encoder=None) -> Path:
    """Train DERL on an MMSA-layout pickle (or its folder) and write the run folder `out`.
    text_encoder: a local BERT-style encoder folder that featurises `text_bert` ids."""
    from .data.mmsa import read_mmsa
    from .derl_trainer import DERLTrainConfig, train_derl
    from .models.derl import DERL, PRESETS, DERLConfig

    if preset not in PRESETS:
        raise DataError(f"unknown --preset {preset!r}; choose from {', '.join(PRESETS)}")
    train_cfg = train_cfg or DERLTrainConfig()
    sets = read_mmsa(data, text_encoder)
    enc_params = 0
    if text_encoder is not None:
        from .data.text_encoder import encoder_parameters, load_encoder

        enc_params = encoder_parameters(load_encoder(text_encoder))
    # the data decides the input dims; an absent sensor is as long as the data's padded length
    lengths = tuple(sets["train"].feats[m].shape[1] for m in "atv")
    cfg = DERLConfig(**{**PRESETS[preset], "input_dims": sets["train"].dims, "absent_lengths": lengths,
                        "text_encoder_params": enc_params, **(model_overrides or {})})
    torch.manual_seed(train_cfg.seed)
    model = DERL(cfg)
    log = _fresh_log(out)
    summary = train_derl(model, sets["train"], sets["valid"], train_cfg, log_path=log, progress=progress)
    meta = {"data": {"root": str(Path(data).resolve()), "layout": "mmsa", "dataset": preset,
                     "task": "sentiment", "preset": preset, "dims": list(sets["train"].dims),
                     "labels": [], "features": ["audio", "text", "vision"],
                     "text_encoder": str(Path(text_encoder).resolve()) if text_encoder else None},
            "training": summary}
    save_run(out, model, meta)
    return out


def evaluate_derl_run(run, data=None, split: str = "test", model=None, config=None) -> dict:
    """DERL's intra-modal (rates) and inter-modal (conditions) tables on a split of its data."""
    from .data.mmsa import read_mmsa
    from .derl_evaluate import evaluate_derl

    if model is None:
        model, config = load_run(run)
    d = config["data"]
    sets = read_mmsa(data or d["root"], d.get("text_encoder"))
    key = {"val": "valid"}.get(split, split)
    if key not in sets:
        raise DataError(f"no {split!r} split in an MMSA pickle (has train, valid, test)")
    return {"dataset": d["dataset"], "task": "sentiment", "split": split, **evaluate_derl(model, sets[key])}
