"""Checks of a live interpreter's imports (tests/test_import_hygiene.py): which repository folders
resolve under a bare name, and which classes exist twice because a module was loaded twice."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import pkgutil
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# every top-level package folder of the repository: none may be importable by its name. (tests/ is
# left out: pytest's importlib mode itself names the test modules `tests.…` in sys.modules.)
BARE_NAMES = ("anymodal", "runtime", "export", "kernels", "train", "bench", "serve")


def shadowed_names() -> dict[str, str]:
    """{bare name: where it resolves} for each top-level folder that `import NAME` finds in the
    repository itself (the installed `anymodal` resolves into the build/ link tree, not here)."""
    out = {}
    for name in BARE_NAMES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        where = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
        folder = ROOT / name  # the repository's own folder (a venv inside the checkout is fine)
        for w in map(Path, where):
            if w.absolute() in (folder, folder / "__init__.py"):
                out[name] = str(w)
    return out


def import_every_module() -> dict[str, str]:
    """Import every `anymodal.*` module; {module: error} for those that fail."""
    import anymodal

    failed = {}
    for info in pkgutil.walk_packages(anymodal.__path__, "anymodal."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            failed[info.name] = f"{type(exc).__name__}: {exc}"
    return failed


def duplicate_classes(name: str) -> list[str]:
    """Modules other than anymodal's own that define a class called `name` (a second copy)."""
    with warnings.catch_warnings():  # isinstance() on some lazy objects warns of their deprecation
        warnings.simplefilter("ignore")
        found = {c.__module__ for c in gc.get_objects() if isinstance(c, type) and c.__name__ == name}
    return sorted(m for m in found if not m.startswith("anymodal."))
