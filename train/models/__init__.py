"""PyTorch models. `build_model(kind, config_dict)` rebuilds a model from a run's config."""

from __future__ import annotations


def build_model(kind: str, config: dict):
    from ..families import get_train_family

    return get_train_family(kind).build_model(config)
