"""DERL, training side: MMSA-layout data, LNLN's missing-rate protocol, the intra- and
inter-modal evaluation, the paper-sized model for rt-bench, and `rt-train derl`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..data.mmsa_layout import MMSA
from .registry import TrainFamily


def train_derl_run(data, out, preset: str = "mosi", model_overrides: dict | None = None,
                   train_cfg=None, progress: bool = True, text_encoder=None) -> Path:
    """Train DERL on an MMSA-layout pickle (or its folder) and write the run folder `out`.
    text_encoder: a local BERT-style encoder folder that featurises `text_bert` ids."""
    import torch

    from anymodal.runtime.errors import DataError

    from .. import distributed
    from ..api import fresh_log
    from ..checkpoint import save_run
    from ..data.mmsa import read_mmsa
    from ..derl_trainer import DERLTrainConfig, train_derl
    from ..models.derl import DERL, PRESETS, DERLConfig

    if preset not in PRESETS:
        raise DataError(f"unknown --preset {preset!r}; choose from {', '.join(PRESETS)}")
    train_cfg = train_cfg or DERLTrainConfig()
    sets = read_mmsa(data, text_encoder)
    enc_params = 0
    if text_encoder is not None:
        from ..data.text_encoder import encoder_parameters, load_encoder

        enc_params = encoder_parameters(load_encoder(text_encoder))
    # the data decides the input dims; an absent sensor is as long as the data's padded length
    lengths = tuple(sets["train"].feats[m].shape[1] for m in "atv")
    cfg = DERLConfig(**{**PRESETS[preset], "input_dims": sets["train"].dims, "absent_lengths": lengths,
                        "text_encoder_params": enc_params, **(model_overrides or {})})
    torch.manual_seed(train_cfg.seed)
    model = DERL(cfg)
    main = distributed.current().is_main  # under torchrun only rank 0 writes the run folder
    log = fresh_log(out) if main else None
    summary = train_derl(model, sets["train"], sets["valid"], train_cfg, log_path=log, progress=progress)
    meta = {"data": {"root": str(Path(data).resolve()), "layout": MMSA.name, "dataset": preset,
                     "task": "sentiment", "preset": preset, "dims": list(sets["train"].dims),
                     "labels": [], "features": ["audio", "text", "vision"],
                     "text_encoder": str(Path(text_encoder).resolve()) if text_encoder else None},
            "training": summary}
    if main:
        save_run(out, model, meta)
    return out


def train_command(
    data: Path = typer.Option(..., help="MMSA-layout pickle, or a folder holding one."),
    out: Path = typer.Option(..., help="Run folder to write (weights, config, log)."),
    preset: str = typer.Option("mosi", help="Paper settings: mosi | mosei."),
    text_encoder: Optional[Path] = typer.Option(None, help="Local BERT-style encoder folder that encodes "
                                                           "the pickle's text_bert ids (needs the text extra)."),
    hidden: Optional[int] = typer.Option(None, help="Hidden size d (paper: 128)."),
    heads: Optional[int] = typer.Option(None, help="Attention heads."),
    dropout: Optional[float] = typer.Option(None, help="Dropout rate."),
    epochs: int = typer.Option(200, help="Training epochs (paper: 200)."),
    batch_size: int = typer.Option(64, help="Samples per step (paper: 64)."),
    lr: float = typer.Option(1e-4, help="AdamW learning rate (paper: 1e-4), cosine-annealed."),
    seed: int = typer.Option(0, help="Random seed."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """DERL with LNLN's missing-rate protocol; the epoch is selected on validation at rate 0.5."""
    from ..derl_trainer import DERLTrainConfig

    overrides = {k: v for k, v in dict(hidden=hidden, heads=heads, dropout=dropout).items() if v is not None}
    cfg = DERLTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    run = train_derl_run(data, out, preset, overrides, cfg, progress, text_encoder)
    typer.echo(f"run written to {run}")


class DERLTrain(TrainFamily):
    name = "derl"
    layout = MMSA  # LNLN's protocol: intra-modal (missing rates) and inter-modal (conditions) tables
    train_command = staticmethod(train_command)

    def build_model(self, config):
        from ..models.derl import DERL, DERLConfig

        return DERL(DERLConfig.from_dict(config))

    def paper_model(self):
        """Paper-sized DERL (MOSI preset: d=128, bottleneck 4, 1 private + 3 shared experts,
        sequences 375x5/50x768/500x20), random weights."""
        import torch

        from ..models.derl import DERL, DERLConfig

        torch.manual_seed(0)
        meta = {"data": {"dataset": "none (random weights)", "labels": [], "layout": MMSA.name,
                         "features": ["audio", "text", "vision"]}}
        return DERL(DERLConfig()).eval(), meta
