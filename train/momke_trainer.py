"""Two-stage MoMKE training (paper §3.4-3.5) with validation-based epoch selection.

Protocols:
* `fixed` (paper comparison): stage 2 sees only the modalities of one condition; one model
  per test condition. Stage 1 trains each expert on its own (complete) training modality.
* `all-patterns` (deployment default): in stage 2 every conversation of every batch is seen
  under k distinct availability patterns drawn uniformly from the 7 (patterns_per_step, default
  all 7), so one model serves all of them.
The best epoch of each stage is chosen on the validation split (never on test); only its
weights are kept (a state-dict copy, not a model object per epoch).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from anymodal.runtime.errors import InputError
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, parse_pattern

from . import distributed
from .data.batching import Batch, iterate_batches
from .data.conversations import Conversation
from .evaluate import batch_tensors, evaluate_conditions, pattern_row, primary_metric, score


@dataclass
class TrainConfig:
    protocol: str = "all-patterns"  # deployment default: one model for all 7 patterns
    condition: str | None = None  # the pattern of the fixed protocol
    epochs_stage1: int = 100  # paper: 100 (IEMOCAP, MOSI), 50 (MOSEI)
    epochs_stage2: int = 100
    batch_size: int = 16  # conversations per step
    # all-patterns: each conversation is seen under this many distinct random patterns per
    # step (7 = all of them), so every pattern gets as much signal as a fixed-protocol model
    patterns_per_step: int = 7
    lr: float = 1e-4  # paper: Adam 1e-4
    seed: int = 0

    def __post_init__(self):
        if self.protocol not in ("all-patterns", "fixed"):
            raise InputError(f"--protocol must be all-patterns or fixed, got {self.protocol!r}")
        if self.protocol == "fixed":
            if not self.condition:
                raise InputError("--protocol fixed needs --condition (e.g. a,v)")
            self.condition = parse_pattern(self.condition)
        elif self.condition:
            raise InputError("--condition only applies to --protocol fixed")
        if not 1 <= self.patterns_per_step <= len(ALL_PATTERNS):
            raise InputError(f"--patterns-per-step must be 1..{len(ALL_PATTERNS)}, got {self.patterns_per_step}")


def task_loss(task: str, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor):
    """Cross-entropy (emotion) or MSE (sentiment) over real utterances."""
    if task == "emotion":
        return F.cross_entropy(logits[mask], labels[mask])
    return F.mse_loss(logits[..., 0][mask], labels[mask].float())


def _val_score_stage1(model, val: list[Conversation]) -> float:
    """Mean validation metric of the three unimodal experts+heads."""
    model.eval()
    scores = []
    with torch.no_grad():
        for m in MODALITIES:
            preds, labels = [], []
            for batch in iterate_batches(val, 32, rng=None):
                mask = torch.from_numpy(batch.mask)
                logits = model.unimodal_logits(m, torch.from_numpy(batch.features[m]), mask)
                out = logits.argmax(-1) if model.cfg.task == "emotion" else logits[..., 0]
                preds.append(out[mask].numpy())
                labels.append(batch.labels[batch.mask])
            scores.append(primary_metric(model.cfg.task, score(model.cfg.task, np.concatenate(preds),
                                                                np.concatenate(labels))))
    return float(np.mean(scores))


def _val_score_stage2(model, val: list[Conversation], cfg: TrainConfig) -> float:
    patterns = (cfg.condition,) if cfg.protocol == "fixed" else ALL_PATTERNS
    res = evaluate_conditions(model, val, patterns)
    return float(np.mean([primary_metric(model.cfg.task, r) for r in res.values()]))


def _shard(batch: Batch, idx: np.ndarray) -> Batch:
    return Batch({m: f[idx] for m, f in batch.features.items()}, batch.mask[idx], batch.labels[idx])


def _run_stage(name, model, params, step_fn, val_fn, epochs, train, cfg, log, progress):
    ctx = distributed.current()  # one process: the whole batch, weight 1
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + (1 if name == "stage2" else 0))
    best = (-np.inf, -1, None)
    bar = tqdm(range(epochs), desc=f"MoMKE {name}", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        losses = []
        for batch in iterate_batches(train, cfg.batch_size, rng):
            idx = ctx.shard(len(batch.mask))  # this rank's conversations of the global batch
            opt.zero_grad()
            loss = torch.zeros(())
            if len(idx):
                share = batch.mask[idx].sum() / batch.mask.sum()  # of the batch's real utterances
                loss = step_fn(batch, rng, idx) * float(share)
                loss.backward()
            ctx.sum_gradients(params)
            opt.step()
            losses.append(ctx.sum_value(loss.item()))
        val = val_fn()
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
        entry = {"stage": name, "epoch": epoch, "train_loss": float(np.mean(losses)), "val_score": val,
                 "best_epoch": best[1]}
        log(entry)
        bar.set_postfix(loss=f"{entry['train_loss']:.3f}", val=f"{val:.3f}", best=best[1])
    model.load_state_dict(best[2])
    return best[0], best[1]


def train_momke(model, train: list[Conversation], val: list[Conversation], cfg: TrainConfig,
                log_path: Path | None = None, progress: bool = True) -> dict:
    """Train in place; returns a summary with the selected epochs and validation scores."""
    torch.manual_seed(cfg.seed)
    distributed.current().broadcast_parameters(model)
    task = model.cfg.task
    log_file = open(log_path, "a") if log_path and distributed.current().is_main else None

    def log(entry):
        if log_file:
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    def stage1_step(batch, rng, idx):
        batch = _shard(batch, idx)
        mask = torch.from_numpy(batch.mask)
        labels = torch.from_numpy(batch.labels)
        return sum(task_loss(task, model.unimodal_logits(m, torch.from_numpy(batch.features[m]), mask),
                             labels, mask) for m in MODALITIES)

    def stage2_step(batch, rng, idx):
        B = len(idx)
        if cfg.protocol == "fixed":
            rows = np.tile(pattern_row(cfg.condition), (B, 1))
            reps = 1
        else:  # k distinct patterns per conversation, the batch repeated k times
            reps = cfg.patterns_per_step
            picks = np.stack([rng.permutation(len(ALL_PATTERNS))[:reps]  # drawn for the global batch
                              for _ in range(batch.mask.shape[0])])[idx]  # [B, k]
            rows = np.stack([pattern_row(ALL_PATTERNS[i]) for i in picks.T.reshape(-1)])  # [k·B, 3]
        batch = _shard(batch, idx)
        feats, mask, avail = batch_tensors(batch, rows[:B])
        if reps > 1:
            feats = [f.repeat(reps, 1, 1) for f in feats]
            mask = mask.repeat(reps, 1)
            avail = torch.from_numpy(rows)[:, None, :].expand(-1, mask.shape[1], -1)
        logits, _ = model(*feats, mask, avail)
        return task_loss(task, logits, torch.from_numpy(batch.labels).repeat(reps, 1), mask)

    t0 = time.time()
    s1 = _run_stage("stage1", model, model.stage1_parameters(), stage1_step,
                    lambda: _val_score_stage1(model, val), cfg.epochs_stage1, train, cfg, log, progress)
    s2 = _run_stage("stage2", model, list(model.parameters()), stage2_step,
                    lambda: _val_score_stage2(model, val, cfg), cfg.epochs_stage2, train, cfg, log, progress)
    if log_file:
        log_file.close()
    model.eval()
    return {"train": asdict(cfg), "stage1": {"best_epoch": s1[1], "val_score": s1[0]},
            "stage2": {"best_epoch": s2[1], "val_score": s2[0]}, "seconds": round(time.time() - t0, 1)}
