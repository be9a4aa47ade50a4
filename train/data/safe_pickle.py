"""A restricted unpickler for dataset label files: builtins and numpy data only.

A dataset file must never be able to run code, so every global a pickle names is checked
against an allow-list. Files written by numpy 1.x name `numpy.core.multiarray`, numpy 2
writes `numpy._core.multiarray`: both spellings are accepted.
"""

from __future__ import annotations

import builtins
import importlib
import pickle
from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError

_BUILTINS = {
    "set", "frozenset", "dict", "list", "tuple", "str", "bytes", "bytearray",
    "int", "float", "complex", "bool", "slice", "range",
}
_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")  # latin1: python-2 era numpy buffers
        self._source = source

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if (module, name) in _NUMPY:
            return _numpy_attr(module, name)
        if module == "_codecs" and name == "encode":  # protocol-2 bytes payloads of numpy arrays
            import _codecs

            return _codecs.encode
        raise DataError(
            f"{self._source}: refusing to unpickle {module}.{name} — dataset pickles may only "
            "hold builtins and numpy arrays/scalars (this file could run code)"
        )


def _numpy_attr(module: str, name: str):
    """Resolve numpy-1 and numpy-2 spellings against the installed numpy."""
    # numpy 2 first (its numpy.core shim warns), then the name as written, then numpy 1.
    for candidate in (module.replace("numpy.core.", "numpy._core."), module,
                      module.replace("numpy._core.", "numpy.core.")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise DataError(f"installed numpy {np.__version__} has no {module}.{name}")


def safe_load_pickle(path: str | Path):
    """Load a dataset pickle with the restricted unpickler; DataError names the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label pickle not found: {path}")
    with path.open("rb") as fh:
        try:
            return _RestrictedUnpickler(fh, str(path)).load()
        except DataError:
            raise
        except Exception as exc:  # truncated / not a pickle
            raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
