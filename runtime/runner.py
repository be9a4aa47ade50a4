"""`rt-run` as a library call: one prediction from .npy feature files, and its one-line summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RequestError
from .patterns import MODALITIES, MODALITY_NAMES
from .prediction import Prediction
from .runtime import Runtime


def load_features(path: Path | None, what: str) -> np.ndarray | None:
    """A .npy feature file (never pickles); None stays None (the sensor is absent)."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"{what}: feature file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise RequestError(f"{what}: {path} is not a readable .npy array ({exc})") from None


def predict_files(bundle: Path, files: dict[str, Path | None], backend: str = "auto",
                  precision: str | None = None, nonfinite: str = "error", spinning: bool = False) -> Prediction:
    """files: {modality letter: .npy path or None}."""
    arrays = {MODALITY_NAMES[m]: load_features(files.get(m), MODALITY_NAMES[m]) for m in MODALITIES}
    with Runtime(bundle, backend=backend, precision=precision, spinning=spinning) as rt:
        return rt.predict(**arrays, nonfinite=nonfinite)


def describe(pred: Prediction) -> str:
    values = pred.labels if pred.labels is not None else np.round(pred.scores, 3)
    return (f"pattern {pred.pattern} via graph {pred.graph} on {pred.backend}\n"
            "predictions: " + " ".join(str(v) for v in np.ravel(values)))
