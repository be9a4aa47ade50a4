"""Train/validation/test protocols. Epochs are selected on validation, never on test."""

from __future__ import annotations

import numpy as np

from anymodal.runtime.errors import DataError

from .conversations import ConversationDataset


def session_of(dialogue_id: str) -> int:
    """IEMOCAP session number: the 5th character of the dialogue id ("Ses03F_..." -> 3)."""
    if len(dialogue_id) < 5 or not dialogue_id[4].isdigit():
        raise DataError(f"dialogue id {dialogue_id!r} does not carry a session number at index 4")
    return int(dialogue_id[4])


def make_splits(ds: ConversationDataset, fold: int | None = None, val_fraction: float = 0.1,
                seed: int = 0) -> dict[str, list[str]]:
    """Return train/val/test conversation ids.

    * MOSI/MOSEI: the distributed splits (fold must be None).
    * IEMOCAP with `fold` K in 1..5: leave-one-session-out, session K is test.
    * IEMOCAP without fold: the pickle's train/test.
    IEMOCAP has no validation split, so `val_fraction` of the training dialogues is held out.
    """
    if ds.spec.has_val_split:
        if fold is not None:
            raise DataError(f"{ds.spec.name} has fixed train/val/test splits; --fold is for IEMOCAP")
        return {k: list(ds.splits[k]) for k in ("train", "val", "test")}
    if fold is not None:
        if not 1 <= fold <= 5:
            raise DataError(f"--fold must be 1..5 (the IEMOCAP session held out), got {fold}")
        ids = sorted(ds.conversations)
        test = [c for c in ids if session_of(c) == fold]
        pool = [c for c in ids if session_of(c) != fold]
        if not test:
            raise DataError(f"fold {fold}: no dialogue of session {fold} in {ds.spec.name}")
    else:
        test, pool = list(ds.splits["test"]), list(ds.splits["train"])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    n_val = max(1, int(round(val_fraction * len(pool))))
    if n_val >= len(pool):
        raise DataError(f"only {len(pool)} training dialogues: too few to hold out validation")
    val = sorted(pool[i] for i in order[:n_val])
    train = sorted(pool[i] for i in order[n_val:])
    return {"train": train, "val": val, "test": sorted(test)}
