"""`rt-report accuracy`: the evaluation protocol of the bundle's dataset layout (e.g. the
7-condition table) computed through the Runtime (what is served), on the held-out split
recorded in the bundle. Torch-free."""

from __future__ import annotations

from pathlib import Path

from anymodal.runtime import Runtime


def accuracy_report(bundle: str | Path, data: str | Path, split: str = "test", backend: str = "auto",
                    batch_size: int = 16, precision: str | None = None) -> dict:
    """The layout's evaluation result (train/data/layout.py): its metric tables and `tables`."""
    from anymodal.train.data.layouts import get_layout  # numpy-only, like the readers

    rt = Runtime(bundle, backend=backend, precision=precision)
    return get_layout(rt.family.dataset_layout).evaluate_runtime(rt, data, split, batch_size)


def int8_delta_lines(bundle: str | Path) -> list[str]:
    """The int8 variant's recorded accuracy delta vs fp32 per condition (validation split)."""
    from anymodal.runtime.bundle import Bundle

    int8 = Bundle(bundle).manifest["variants"].get("int8")
    if not int8:
        return []
    acc = int8.get("accuracy") or {}
    worst = max(int8.get("max_logit_difference", {}).values(), default=float("nan"))
    if not acc.get("measured"):
        return [f"int8 variant: accuracy not measured ({acc.get('reason', 'no record')}); "
                f"max logit difference vs fp32 {worst:.3g}"]
    deltas = ", ".join(f"{{{','.join(c)}}} {v['delta_points']:+.2f}" for c, v in acc["conditions"].items())
    return [f"int8 vs fp32 on {acc['split']} ({acc['metric'].upper()}, points): {deltas}; "
            f"max logit difference {worst:.3g}"]
