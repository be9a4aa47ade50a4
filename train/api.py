"""Python API behind `rt-eval` and the families' `rt-train` commands: read data, evaluate a run.
Training lives with each family (train/families/<family>.py)."""

from __future__ import annotations

from pathlib import Path

from anymodal.runtime.errors import DataError

from .checkpoint import load_run
from .data.gcnet import read_gcnet
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
    if layout == "mmsa":
        from .data.synth_mmsa import MOSI_SHAPES, MmsaSynthConfig, generate_mmsa, parse_shapes

        shapes = parse_shapes(dims) if dims else MOSI_SHAPES
        path = generate_mmsa(MmsaSynthConfig(samples=samples, shapes=shapes, seed=seed), out)
        return f"wrote synthetic sentiment data ({samples} samples, MMSA layout) to {path}"
    if layout != "gcnet":
        raise DataError(f"--layout {layout!r} is not available; choose gcnet or mmsa")
    from .data.synth import SynthConfig, generate

    try:
        d = tuple(int(x) for x in (dims or "64,96,48").split(","))
    except ValueError:
        raise DataError(f"--dims must be three integers audio,text,visual, got {dims!r}") from None
    path = generate(SynthConfig(task=task, conversations=conversations, dims=d, seed=seed), out)
    return f"wrote synthetic {task} data ({conversations} conversations) to {path}"
