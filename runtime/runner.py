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


def stream_turns(bundle: Path, source: str, out, backend: str = "auto", precision: str | None = None,
                 max_context: int = 64, nonfinite: str = "error", keep_going: bool = False) -> int:
    """`rt-run stream`: follow the conversation in a JSONL file of turns (runtime/turns.py;
    "-" = stdin, references relative to the current folder) and write one JSON line per turn to
    `out` as it goes: {"line", "id", **TurnPrediction.to_dict()}. A bad line raises TurnError
    naming it; with keep_going it is answered with {"line", "id", "error"} instead, the
    conversation goes on without it, and a TurnError listing the refused lines ends the run.
    Returns the number of turns predicted."""
    import json
    import os
    import sys

    from .turns import TurnError, parse_turn

    stdin = source == "-"
    if not stdin and not Path(source).is_file():
        raise RequestError(f"turns file not found: {source}")
    base = Path(os.path.realpath(Path.cwd() if stdin else Path(source).parent))
    refused, done = [], 0
    with Runtime(bundle, backend=backend, precision=precision) as rt:
        conv = rt.conversation(max_context)  # before reading: a bundle that cannot stream fails first
        dims = rt.bundle.dims
        stream = sys.stdin.buffer if stdin else open(source, "rb")
        try:
            for n, raw in enumerate(stream, start=1):  # bytes: a bad byte names its line
                if not raw.strip():
                    continue
                turn = None
                try:
                    turn = parse_turn(raw, n, base, dims, allow_nonfinite=nonfinite == "absent")
                    try:
                        p = conv.add(**turn.arrays(), nonfinite=nonfinite)
                    except RequestError as exc:  # a turn the conversation refused: name its line
                        raise TurnError(n, str(exc)) from None
                    record = {"line": n, "id": turn.id, **p.to_dict()}
                    done += 1
                except TurnError as exc:
                    if not keep_going:
                        raise
                    refused.append(n)
                    record = {"line": n, "id": turn.id if turn else None, "error": f"{type(exc).__name__}: {exc}"}
                out.write(json.dumps(record, allow_nan=False) + "\n")
                out.flush()
        finally:
            if not stdin:
                stream.close()
    if refused:
        raise TurnError(refused[0], f"{len(refused)} of {done + len(refused)} turns refused (lines "
                                    f"{', '.join(map(str, refused))}); the others were predicted")
    return done
