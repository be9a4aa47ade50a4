"""The family registry: every layer asks it instead of testing a family name."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from ..errors import InputError

_FAMILIES: dict = {}
FAMILY_MODULES_ENV = "ANYMODAL_FAMILIES"  # comma-separated modules (or .py files) that register families


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
            _import(name)
        except (ImportError, OSError) as exc:
            raise InputError(f"{FAMILY_MODULES_ENV}: cannot import {name!r} ({exc})") from exc


def _import(name: str) -> None:
    """A module name, or the path of a .py file: for interpreters that ignore PYTHONPATH
    (the process Triton's Python backend starts per model)."""
    if not name.endswith(".py"):
        importlib.import_module(name)
        return
    stem = os.path.splitext(os.path.basename(name))[0]
    spec = importlib.util.spec_from_file_location(stem, name)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a Python file: {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
