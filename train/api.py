"""Python API behind `rt-eval` and the families' `rt-train` commands: read data, evaluate a run.
Training lives with each family (train/families/<family>.py)."""

from __future__ import annotations

from pathlib import Path

from anymodal.runtime.errors import DataError

from .checkpoint import load_run
from .data.gcnet import read_gcnet
from .data.layouts import get_layout
from .data.specs import SYNTH_FEATURES
from .data.splits import make_splits
from .families import get_train_family


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


def fresh_log(out) -> Path:
    """The run folder's training log, emptied (a re-run into the same folder starts over)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "train_log.jsonl"
    log.unlink(missing_ok=True)
    return log


def evaluate_run(run, data=None, split: str = "test") -> dict:
    """The evaluation tables of a run's family (e.g. the 7 conditions) on its own split of the
    data it was trained on."""
    model, config = load_run(run)
    return get_train_family(config["model"]["kind"]).evaluate_run(run, data, split, model, config)


def synth_data(layout: str, out, task: str = "emotion4", conversations: int = 150, samples: int = 600,
               dims: str | None = None, seed: int = 0) -> str:
    """`rt-data synth`: write synthetic data in a layout; returns what was written (one line)."""
    return get_layout(layout).synth(out, task, conversations, samples, dims, seed)
