"""The family registry: every layer asks it instead of testing a family name."""

from __future__ import annotations

from ..errors import InputError

_FAMILIES: dict = {}


def register_family(family) -> None:
    """Register a RuntimeFamily instance under its name (a later registration replaces it)."""
    _FAMILIES[family.name] = family


def get_family(name: str):
    if name not in _FAMILIES:
        raise InputError(f"unknown model family {name!r}; registered: {', '.join(_FAMILIES) or 'none'}")
    return _FAMILIES[name]


def family_names() -> tuple[str, ...]:
    return tuple(_FAMILIES)
