"""Analytic multiply-accumulate counts of a bundle's graphs (matmul-like ops only, as FLOP
counters report them), from the model config in its manifest. Each family computes its own
(runtime/families/<family>.py); torch-free."""

from __future__ import annotations

from anymodal.runtime.families import get_family


def model_macs(kind: str, config: dict, modalities: str, batch: int, seq: int | None) -> int:
    return get_family(kind).macs(config, modalities, batch, seq)
