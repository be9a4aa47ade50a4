"""The family registry: every layer asks it instead of testing a family name."""

from __future__ import annotations

import importlib
import os

from ..errors import InputError

_FAMILIES: dict = {}
FAMILY_MODULES_ENV = "ANYMODAL_FAMILIES"  # comma-separated modules that register more families


def register_family(family) -> None:
    """Register a RuntimeFamily instance under its name (a later registration replaces it)."""
    _FAMILIES[family.name] = family


def get_family(name: str):
    if name not in _FAMILIES:
        import_family_modules()
    if name not in _FAMILIES:
        raise InputError(f"unknown model family {name!r}; registered: {', '.join(_FAMILIES) or 'none'}")
    return _FAMILIES[name]


def family_names() -> tuple[str, ...]:
    import_family_modules()
    return tuple(_FAMILIES)


_imported = False


def import_family_modules() -> None:
    """Import the modules named in $ANYMODAL_FAMILIES (each registers its family's halves when
    imported), so that a family outside anymodal is known in every process of a run (rt-bench's
    workers, torchrun's ranks, Triton's Python backend). Once, on the first look-up (not at
    import: such a module imports the registries itself)."""
    global _imported
    if _imported:
        return
    _imported = True
    for name in filter(None, (s.strip() for s in os.environ.get(FAMILY_MODULES_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InputError(f"{FAMILY_MODULES_ENV}: cannot import {name!r} ({exc})") from exc
