"""MoMKE, training side: GCNet-layout data, two-stage training, the 7-condition evaluation,
the paper-sized model for rt-bench, and `rt-train momke`. torch is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..data.gcnet_layout import GCNET
from .registry import TrainFamily

PAPER_MOMKE = dict(input_dims=(512, 1024, 1024), hidden=256, depth=4, heads=2, output_dim=4,
                   task="emotion")
IEMOCAP4_LABELS = ["happy", "sad", "neutral", "angry"]


def train_momke_run(data, dataset: str, out, features=None, fold: int | None = None,
                    model_overrides: dict | None = None, train_cfg=None, progress: bool = True) -> Path:
    """Train MoMKE on a GCNet-layout folder and write the run folder `out`."""
    import torch

    from .. import distributed
    from ..api import fresh_log, load_dataset
    from ..checkpoint import save_run
    from ..models.momke import MoMKE, MoMKEConfig
    from ..momke_trainer import TrainConfig, train_momke

    train_cfg = train_cfg or TrainConfig()
    ds, splits = load_dataset(data, dataset, features, fold, seed=train_cfg.seed)
    overrides = dict(model_overrides or {})
    cfg = MoMKEConfig.preset_config(overrides.pop("preset", "paper"), input_dims=ds.input_dims(),
                                    output_dim=ds.spec.output_dim, task=ds.spec.task, **overrides)
    torch.manual_seed(train_cfg.seed)
    model = MoMKE(cfg)
    main = distributed.current().is_main  # under torchrun only rank 0 writes the run folder
    log = fresh_log(out) if main else None
    summary = train_momke(model, ds.split_by(splits["train"]), ds.split_by(splits["val"]), train_cfg,
                          log_path=log, progress=progress)
    meta = {
        "data": {"root": str(Path(data).resolve()), "dataset": ds.spec.name, "task": ds.spec.task,
                 "features": list(ds.feature_names.values()), "dims": ds.dims,
                 "labels": list(ds.spec.label_names), "fold": fold, "splits": splits},
        "training": summary,
    }
    if main:
        save_run(out, model, meta)
    return out


def train_command(
    data: Path = typer.Option(..., help="Dataset folder (GCNet layout)."),
    dataset: str = typer.Option(..., help="iemocap4 | iemocap6 | mosi | mosei"),
    out: Path = typer.Option(..., help="Run folder to write (weights, config, log)."),
    features: str = typer.Option("synth-audio,synth-text,synth-visual",
                                 help="Feature folder names AUDIO,TEXT,VISUAL."),
    protocol: str = typer.Option("all-patterns",
                                 help="all-patterns (one model, 7 patterns) | fixed (one condition)."),
    condition: Optional[str] = typer.Option(None, help="Pattern for --protocol fixed, e.g. a,v."),
    fold: Optional[int] = typer.Option(None, help="IEMOCAP leave-one-session-out fold 1..5."),
    hidden: int = typer.Option(256, help="Hidden size d (paper: 256 IEMOCAP, 128 MOSI, 256 MOSEI)."),
    depth: int = typer.Option(4, help="Transformer blocks per expert (Q)."),
    heads: int = typer.Option(2, help="Attention heads."),
    dropout: float = typer.Option(0.5, help="Dropout rate."),
    preset: str = typer.Option("paper", help="paper (LN, positions, out-projection) | authors (their code exactly)."),
    causal: bool = typer.Option(False, "--causal/--bidirectional",
                                help="Causal expert attention (utterance i sees utterances <= i), in both "
                                     "stages: the bundle can stream conversations with step graphs and "
                                     "KV caches. anymodal option; the paper is bidirectional."),
    epochs_stage1: int = typer.Option(100, help="Unimodal expert training epochs."),
    epochs_stage2: int = typer.Option(100, help="Experts mixing training epochs."),
    batch_size: int = typer.Option(16, help="Conversations per step."),
    patterns_per_step: int = typer.Option(7, help="all-patterns: random patterns per conversation per step."),
    lr: float = typer.Option(1e-4, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Random seed."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Two-stage MoMKE training with validation-based epoch selection."""
    from ..momke_trainer import TrainConfig

    cfg = TrainConfig(protocol=protocol, condition=condition, epochs_stage1=epochs_stage1,
                      epochs_stage2=epochs_stage2, batch_size=batch_size,
                      patterns_per_step=patterns_per_step, lr=lr, seed=seed)
    run = train_momke_run(data, dataset, out, features, fold,
                          dict(hidden=hidden, depth=depth, heads=heads, dropout=dropout, preset=preset,
                               causal=causal), cfg, progress)
    typer.echo(f"run written to {run}")


class MoMKETrain(TrainFamily):
    name = "momke"
    layout = GCNET
    train_command = staticmethod(train_command)

    def build_model(self, config):
        from ..models.momke import MoMKE, MoMKEConfig

        return MoMKE(MoMKEConfig.from_dict(config))

    paper_precisions = ("fp32", "fp16", "int8")  # int8 for rt-bench's ort-int8 rows

    @staticmethod
    def reference_callable(model, args, mode: str):
        """The authors' computation: all 9 expert passes on masked inputs (models/momke_reference.py);
        mode eager | compiled | int8."""
        from ..models.momke_reference import reference_callable

        return reference_callable(model, args, mode)

    def paper_model(self):
        """Paper-sized MoMKE (IEMOCAP dims 512/1024/1024, d=256, Q=4, 2 heads), random weights."""
        import torch

        from ..models.momke import MoMKE, MoMKEConfig

        torch.manual_seed(0)
        meta = {"data": {"dataset": "none (random weights)", "labels": IEMOCAP4_LABELS,
                         "features": ["wav2vec-large-c-UTT", "deberta-large-4-UTT", "manet_UTT"]}}
        return MoMKE(MoMKEConfig(**PAPER_MOMKE)).eval(), meta
