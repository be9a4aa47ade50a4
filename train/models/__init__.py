"""PyTorch models. `build_model(kind, config_dict)` rebuilds a model from a run's config."""

from __future__ import annotations


def build_model(kind: str, config: dict):
    if kind == "momke":
        from .momke import MoMKE, MoMKEConfig

        return MoMKE(MoMKEConfig.from_dict(config))
    if kind == "derl":
        from .derl import DERL, DERLConfig

        return DERL(DERLConfig.from_dict(config))
    from anymodal.runtime.errors import DataError

    raise DataError(f"unknown model kind {kind!r} (known: momke, derl)")
