"""Recorded runtime cases: requests and the Predictions they gave, stored as JSON + npz so that
another interpreter or CPU architecture can replay them without torch (numpy only).

A case is {"bundle": name, "kwargs": {...}} where every array in kwargs is replaced by
{"$array": key} into the npz; a Prediction is flattened to {field path: value}.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

CASES, ARRAYS = "cases.json", "arrays.npz"


def _encode(obj, arrays: dict, prefix: str):
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"$array": prefix}
    if isinstance(obj, dict):
        return {k: _encode(v, arrays, f"{prefix}/{k}") for k, v in obj.items()}
    return obj


def _decode(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {"$array"}:
            return arrays[obj["$array"]]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    return obj


def flatten_prediction(pred) -> dict:
    """{path: value} for every field of a Prediction, nested dicts as 'field/key'."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif value is not None:
            flat[prefix] = np.asarray(value) if isinstance(value, (np.ndarray, np.generic, list, tuple)) else value

    fields = dataclasses.asdict(pred) if dataclasses.is_dataclass(pred) else vars(pred)
    for name, value in fields.items():
        walk(name, value)
    return flat


def save_cases(folder: Path, cases: list[dict], outputs: list[dict]) -> None:
    arrays: dict[str, np.ndarray] = {}
    records = []
    for i, (case, out) in enumerate(zip(cases, outputs)):
        records.append({"bundle": case["bundle"], "name": case["name"],
                        "kwargs": _encode(case["kwargs"], arrays, f"c{i}/in"),
                        "outputs": {k: _encode(v, arrays, f"c{i}/out/{k}") for k, v in out.items()}})
    (folder / CASES).write_text(json.dumps(records, indent=1))
    # object arrays (class names) are stored as unicode so np.load needs no pickle
    np.savez(folder / ARRAYS, **{k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()})


def load_cases(folder: Path) -> list[dict]:
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    records = json.loads((folder / CASES).read_text())
    for r in records:
        r["kwargs"] = _decode(r["kwargs"], arrays)
        r["outputs"] = {k: _decode(v, arrays) for k, v in r["outputs"].items()}
    return records


def compare_outputs(expected: dict, got: dict, atol: float) -> list[str]:
    """Differences between two flattened Predictions; [] when they agree within atol."""
    problems = []
    for key in sorted(set(expected) | set(got)):
        if key not in got or key not in expected:
            problems.append(f"{key}: only in {'reference' if key in expected else 'this run'}")
            continue
        e, g = expected[key], got[key]
        if isinstance(e, np.ndarray) and e.dtype.kind in "fc":
            g = np.asarray(g, dtype=np.float64)
            if g.shape != e.shape:
                problems.append(f"{key}: shape {g.shape}, reference {e.shape}")
            elif not np.allclose(g, e, rtol=0, atol=atol, equal_nan=True):
                problems.append(f"{key}: max |difference| {np.nanmax(np.abs(g - e)):.3g} > {atol:g}")
        elif isinstance(e, np.ndarray):
            if not np.array_equal(np.asarray(g).astype(str), e.astype(str)):
                problems.append(f"{key}: {np.asarray(g).tolist()} != reference {e.tolist()}")
        elif e != g:
            problems.append(f"{key}: {g!r} != reference {e!r}")
    return problems
