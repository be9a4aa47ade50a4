"""DERL training (paper §4.2, LNLN's protocol): AdamW + cosine annealing, loss = task + dec +
rec; every epoch, half the training samples lose a U(0, 1) fraction of each modality's
tokens (fresh draws); the epoch kept is the one with the lowest validation MAE at missing
rate 0.5 (a fixed draw), never chosen on test."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from anymodal.runtime.errors import InputError
from anymodal.runtime.metrics import sentiment_metrics

from . import distributed
from .data.missing import rate_avail, training_avail
from .data.mmsa import SequenceSet
from .derl_evaluate import batch_args, predict_scores


@dataclass
class DERLTrainConfig:
    epochs: int = 200  # paper: 200
    batch_size: int = 64  # paper: 64
    lr: float = 1e-4  # paper: 1e-4
    weight_decay: float = 0.01  # AdamW default; paper silent
    val_rate: float = 0.5  # selection at missing rate 0.5 (paper)
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError(f"epochs, batch size and lr must be positive (got {self.epochs}, "
                             f"{self.batch_size}, {self.lr})")
        if not 0.0 <= self.val_rate < 1.0:
            raise InputError(f"--val-rate must be in [0, 1), got {self.val_rate}")


def train_derl(model, train: SequenceSet, valid: SequenceSet, cfg: DERLTrainConfig,
               log_path: Path | None = None, progress: bool = True) -> dict:
    """Train in place. Under torchrun (train/distributed.py) every rank draws the same global
    batch and trains on its rows of it; its mean losses are weighted by its share of the batch
    (every DERL loss is a mean over samples of equal-sized terms), so the summed gradients equal
    the one-process ones."""
    torch.manual_seed(cfg.seed)
    ctx = distributed.current()  # one process: the whole batch, weight 1
    ctx.broadcast_parameters(model)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    val_avail = rate_avail(valid.masks, cfg.val_rate, seed=cfg.seed + 1)
    best = {"mae": float("inf"), "epoch": 0, "state": None}
    bar = tqdm(range(1, cfg.epochs + 1), desc="derl", disable=not progress, unit="epoch")
    t0 = time.time()
    for epoch in bar:
        model.train()
        avail = training_avail(train.masks, rng)  # fresh missingness every epoch
        order = rng.permutation(len(train))
        sums = {"loss": 0.0, "task": 0.0, "dec": 0.0, "rec": 0.0}
        for start in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[start:start + cfg.batch_size])  # the global batch
            # the global batch's arrays (trimmed to its longest sequences), then this rank's rows:
            # each rank sees the lengths one process would, so the element means agree
            xs, masks, avails = batch_args(train, idx, avail)
            target = torch.from_numpy(train.labels[idx])[:, None]  # [B, 1]
            mine = torch.from_numpy(ctx.shard(len(idx)))
            share = len(mine) / len(idx)
            opt.zero_grad()
            values = dict.fromkeys(sums, 0.0)
            if len(mine):
                losses = model.losses(*({m: v[mine] for m, v in d.items()} for d in (xs, masks, avails)),
                                      target[mine])
                (losses["loss"] * share).backward()
                values = {k: float(losses[k].detach()) * share for k in sums}
            ctx.sum_gradients(model.parameters())
            opt.step()
            for k in sums:
                sums[k] += ctx.sum_value(values[k]) * len(idx) / len(train)
        sched.step()
        val = sentiment_metrics(valid.labels, predict_scores(model, valid, val_avail))
        if val["mae"] < best["mae"]:
            best = {"mae": val["mae"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        entry = {"epoch": epoch, **{f"train_{k}": v for k, v in sums.items()},
                 "val_mae": val["mae"], "val_corr": val["corr"], "lr": sched.get_last_lr()[0]}
        bar.set_postfix(loss=f"{sums['loss']:.3f}", val_mae=f"{val['mae']:.3f}", best=best["epoch"])
        if log_path is not None and ctx.is_main:
            with Path(log_path).open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
    model.load_state_dict(best["state"])
    model.eval()
    return {"config": asdict(cfg), "best_epoch": best["epoch"], "best_val_mae": best["mae"],
            "seconds": round(time.time() - t0, 1)}
