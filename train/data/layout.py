"""What a dataset layout is: how a dataset is stored, read and generated, and the evaluation
protocol its models are scored with, on the PyTorch model (`rt-eval`) and through the Runtime
(`rt-report accuracy`, int8's accuracy check), plus the samples TensorRT calibrates on.

A train family names its layout (`TrainFamily.layout`); its runtime family names the same one
(`RuntimeFamily.dataset_layout`, a name: the runtime cannot import train). Built-in: GCNET
(gcnet_layout.py) and MMSA (mmsa_layout.py), registered in layouts.py. Layouts live in train,
beside their readers (numpy only at import; torch only inside `evaluate_model`): export and
bench reach them lazily, the runtime never does (docs/ARCHITECTURE.md §4a).

An evaluation result is a dict: dataset, task, split (+ backend through the Runtime), the raw
metric tables (e.g. conditions: {pattern: metrics}), and `tables`, the rows to print, first
to last: [{"title", "first", "rows": {row label: metrics}}] (rt-eval and rt-report print them
as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from anymodal.runtime.patterns import ALL_PATTERNS


def average(tables: list[dict]) -> dict:
    """Metric-wise mean of several metric dicts (the 'average' rows)."""
    return {k: float(np.mean([t[k] for t in tables])) for k in tables[0]}


def table(title: str, first: str, rows: dict[str, dict], average_row: dict | None = None) -> dict:
    """One printable table: `first` heads the row-label column; an average row last when given."""
    rows = dict(rows)
    if average_row is not None:
        rows["average"] = average_row
    return {"title": title, "first": first, "rows": rows}


def conditions_table(conditions: dict[str, dict]) -> dict:
    """The paper's Table-2 rows: the 7 availability conditions in order, then their average."""
    order = [p for p in ALL_PATTERNS if p in conditions]
    return table("", "condition", {"{" + ",".join(p) + "}": conditions[p] for p in order},
                 average([conditions[p] for p in order]) if len(order) > 1 else None)


class DatasetLayout:
    """Abstract: one instance per layout."""

    name: str = "abstract"  # `rt-data synth --layout`, RuntimeFamily.dataset_layout
    input_kind = None  # the runtime InputKind its samples are (runtime/families/input_kind.py)

    def synth(self, out: Path, task: str, conversations: int, samples: int, dims: str | None, seed: int) -> str:
        """`rt-data synth`: write synthetic data in this layout; one line saying what was written."""
        raise NotImplementedError  # abstract

    def evaluate_model(self, model, config: dict, data, split: str) -> dict:
        """The protocol on a PyTorch model (`rt-eval`): config is the run's config.json."""
        raise NotImplementedError  # abstract

    def evaluate_runtime(self, rt, data, split: str, batch_size: int) -> dict:
        """The same protocol through a Runtime (what is served), on the split the bundle records."""
        raise NotImplementedError  # abstract

    def calibration_samples(self, info: dict, root: Callable[[], Path], limit: int) -> tuple[str, list[dict]]:
        """(where they came from, up to `limit` training samples {m: [T_m, dim] float32}):
        `info` is the bundle manifest's `data`; root() finds the data the run was trained on
        (called once `info` is known to name a split)."""
        raise NotImplementedError  # abstract
