"""A third model family, registered from this module only: the proof that the family interface is
real, and the worked example of docs/ARCHITECTURE.md §4a ("Add a family").

Late-fusion MLP baseline (utterance-level, no context between utterances):
    e_m = MLP_m(x_m)                                  [B, L, h] per modality
    fused = sum_m w_m e_m,  w = avail / |present|     mean of the present modalities' embeddings
    logits = Linear(fused)                            [B, L, C]
Graph outputs: logits [B, L, C] and router_weights [B, L, 3] = w (the fixed mean-fusion
weights, reported like a router's under the key "fusion").

Nothing outside this file changes to train, export, serve and benchmark it: importing it
registers both halves (runtime: numpy only; training: torch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import typer

from anymodal.runtime.families import (
    FUSION,
    UTTERANCES,
    Decoded,
    RuntimeFamily,
    TensorSpec,
    head_outputs,
    register_family,
)
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES
from anymodal.train.families import TrainFamily, register_train_family

NAME = "latefusion"


# ----------------------------------------------------------------------- runtime half (numpy)
class LateFusionRuntime(RuntimeFamily):
    name = NAME
    inputs = UTTERANCES  # conversations of utterances: the shared request pipeline does the rest
    training_only_label = "nothing training-only"

    def graph_outputs(self, graph, config, float_dtype="float32"):
        return [TensorSpec("logits", ("batch", "seq", config["output_dim"]), float_dtype),
                TensorSpec("router_weights", ("batch", "seq", len(MODALITIES)), float_dtype)]

    def decode(self, task, class_names, req, graph, outputs):
        labels, probs, scores = head_outputs(task, class_names, outputs["logits"])
        return Decoded(labels, probs, scores, {FUSION: outputs["router_weights"]}, {FUSION: MODALITIES})

    def macs(self, config, modalities, batch, seq):
        h = config["hidden"]
        dims = dict(zip(MODALITIES, config["input_dims"]))
        per_mod = {m: (dims[m] * h + h * h) * seq for m in MODALITIES}  # two-layer MLP encoder
        return batch * (sum(per_mod[m] for m in modalities) + h * config["output_dim"] * seq)


# ----------------------------------------------------------------------- training half (torch)
@dataclass
class LateFusionConfig:
    input_dims: tuple[int, int, int] = (512, 1024, 1024)
    hidden: int = 256  # encoder width (a baseline: same d as paper-sized MoMKE)
    output_dim: int = 4
    task: str = "emotion"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LateFusionConfig":
        return cls(**{**d, "input_dims": tuple(d["input_dims"])})


def _model_classes():
    import torch
    from torch import nn

    class LateFusion(nn.Module):
        kind = NAME

        def __init__(self, cfg: LateFusionConfig):
            super().__init__()
            self.cfg = cfg
            h = cfg.hidden
            self.enc = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h))
                                      for m, d in zip(MODALITIES, cfg.input_dims)})
            self.head = nn.Linear(h, cfg.output_dim)

        def fuse(self, embs: dict, weights: torch.Tensor):
            """embs m -> [B, L, h]; weights [B, L, 3] over MODALITIES (0 = absent)."""
            stacked = torch.stack([embs[m] for m in MODALITIES if m in embs], dim=2)  # [B, L, P, h]
            cols = [i for i, m in enumerate(MODALITIES) if m in embs]
            fused = (stacked * weights[..., cols, None]).sum(dim=2)  # [B, L, h]
            return self.head(fused), weights

        def forward(self, audio, text, visual, mask, avail):  # the masked graph's inputs
            w = (avail & mask[..., None]).to(audio.dtype)  # [B, L, 3] (fp16 graphs: half)
            w = w / w.sum(-1, keepdim=True).clamp(min=1.0)
            return self.fuse({m: self.enc[m](x) for m, x in zip(MODALITIES, (audio, text, visual))}, w)

        def specialise(self, pattern: str):
            return LateFusionSpecialised(self, pattern)

        def parameter_report(self) -> dict:
            def count(prefix):
                return sum(p.numel() for n, p in self.named_parameters() if n.startswith(prefix))

            comp = {"encoders": count("enc."), "head": count("head.")}
            active = {p: count("head.") + sum(count(f"enc.{m}.") for m in p) for p in ALL_PATTERNS}
            return {"total": sum(comp.values()), "served": sum(comp.values()), "components": comp,
                    "active": active}

    class LateFusionSpecialised(nn.Module):
        """Only the pattern's encoders; the fusion weights are the constant 1/|pattern|."""

        def __init__(self, model, pattern: str):
            super().__init__()
            self.model, self.pattern = model, pattern
            self.register_buffer("row", torch.tensor([float(m in pattern) / len(pattern) for m in MODALITIES]))

        def forward(self, *inputs):
            *xs, mask = inputs
            w = mask[..., None].to(self.row.dtype) * self.row  # [B, L, 3]
            return self.model.fuse({m: self.model.enc[m](x) for m, x in zip(self.pattern, xs)}, w)

    return LateFusion


def build(cfg: LateFusionConfig):
    return _model_classes()(cfg)


def train_latefusion_run(data, out, epochs: int = 25, hidden: int = 32, seed: int = 0,
                         batch_size: int = 16, lr: float = 3e-3) -> Path:
    """Train on a GCNet-layout folder with a random availability pattern per conversation and
    step (one model for all 7 patterns); writes a run folder like every family's. Under torchrun
    (anymodal.train.distributed) each rank trains on its conversations of the global batch."""
    import torch

    from anymodal.train import distributed
    from anymodal.train.api import fresh_log, load_dataset
    from anymodal.train.checkpoint import save_run
    from anymodal.train.data.batching import Batch, iterate_batches
    from anymodal.train.evaluate import batch_tensors, evaluate_conditions, primary_metric

    ctx = distributed.current()
    ds, splits = load_dataset(data, "iemocap4", None, None, seed=seed)
    torch.manual_seed(seed)
    model = build(LateFusionConfig(input_dims=ds.input_dims(), hidden=hidden,
                                   output_dim=ds.spec.output_dim, task=ds.spec.task))
    ctx.broadcast_parameters(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    train, val = ds.split_by(splits["train"]), ds.split_by(splits["val"])
    rows = np.array([[m in p for m in MODALITIES] for p in ALL_PATTERNS])
    best, best_state, log = -np.inf, None, fresh_log(out) if ctx.is_main else None
    for epoch in range(epochs):
        model.train()
        for batch in iterate_batches(train, batch_size, rng):
            avail = rows[rng.integers(0, len(rows), len(batch.mask))]  # drawn for the global batch
            idx = ctx.shard(len(batch.mask))  # this rank's conversations of it
            opt.zero_grad()
            if len(idx):
                mine = Batch({m: f[idx] for m, f in batch.features.items()}, batch.mask[idx], batch.labels[idx])
                feats, mask, av = batch_tensors(mine, avail[idx])
                logits, _ = model(*feats, mask, av)
                share = float(mine.mask.sum() / batch.mask.sum())  # of the batch's real utterances
                loss = torch.nn.functional.cross_entropy(logits[mask], torch.from_numpy(mine.labels)[mask])
                (loss * share).backward()
            ctx.sum_gradients(list(model.parameters()))
            opt.step()
        model.eval()
        score = np.mean([primary_metric(model.cfg.task, m) for m in evaluate_conditions(model, val).values()])
        if log is not None:
            with log.open("a") as fh:
                fh.write(f'{{"epoch": {epoch}, "val_wa_mean": {score}}}\n')
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    meta = {"data": {"root": str(Path(data).resolve()), "dataset": ds.spec.name, "task": ds.spec.task,
                     "features": list(ds.feature_names.values()), "labels": list(ds.spec.label_names),
                     "fold": None, "splits": splits},
            "training": {"epochs": epochs, "best_val_wa_mean": float(best)}}
    if ctx.is_main:
        save_run(out, model.eval(), meta)
    return Path(out)


def train_command(
    data: Path = typer.Option(..., help="Dataset folder (GCNet layout, iemocap4)."),
    out: Path = typer.Option(..., help="Run folder to write."),
    epochs: int = typer.Option(25, help="Training epochs."),
    hidden: int = typer.Option(32, help="Encoder width."),
    batch_size: int = typer.Option(16, help="Conversations per step."),
    lr: float = typer.Option(3e-3, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Random seed."),
):
    """Late-fusion MLP baseline (the worked example of a family)."""
    typer.echo(f"run written to {train_latefusion_run(data, out, epochs, hidden, seed, batch_size, lr)}")


class LateFusionTrain(TrainFamily):
    name = NAME  # layout: the default, GCNET (its evaluation protocol serves rt-eval)
    train_command = staticmethod(train_command)

    def build_model(self, config):
        return build(LateFusionConfig.from_dict(config))

    def paper_model(self):
        import torch

        torch.manual_seed(0)
        meta = {"data": {"dataset": "none (random weights)", "labels": ["happy", "sad", "neutral", "angry"],
                         "features": ["wav2vec-large-c-UTT", "deberta-large-4-UTT", "manet_UTT"]}}
        return build(LateFusionConfig()).eval(), meta


def register() -> None:
    register_family(LateFusionRuntime())
    register_train_family(LateFusionTrain())


register()
