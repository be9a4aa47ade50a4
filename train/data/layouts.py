"""The dataset-layout registry (layout.py says what a layout is): built-in GCNET and MMSA."""

from __future__ import annotations

from anymodal.runtime.errors import DataError

from .gcnet_layout import GCNET
from .layout import DatasetLayout
from .mmsa_layout import MMSA

_LAYOUTS: dict[str, DatasetLayout] = {}


def register_layout(layout: DatasetLayout) -> None:
    _LAYOUTS[layout.name] = layout


def get_layout(name: str) -> DatasetLayout:
    if name not in _LAYOUTS:
        raise DataError(f"unknown dataset layout {name!r}; known: {', '.join(_LAYOUTS)}")
    return _LAYOUTS[name]


def layout_names() -> tuple[str, ...]:
    return tuple(_LAYOUTS)


register_layout(GCNET)
register_layout(MMSA)
