"""`rt-report accuracy`: the evaluation protocol of the bundle's dataset layout (e.g. the
7-condition table) computed through the Runtime (what is served), on the held-out split
recorded in the bundle. Torch-free."""

from __future__ import annotations

from pathlib import Path

from anymodal.runtime import Runtime

# the headline score per task: WA for emotion, Acc-2 (non-zero) for sentiment
HEADLINE = {"emotion": "wa", "sentiment": "acc2_non0"}


def accuracy_report(bundle: str | Path, data: str | Path, split: str = "test", backend: str = "auto",
                    batch_size: int = 16, precision: str | None = None) -> dict:
    """The layout's evaluation result (train/data/layout.py): its metric tables and `tables`."""
    from anymodal.train.data.layouts import get_layout  # numpy-only, like the readers

    rt = Runtime(bundle, backend=backend, precision=precision)
    return get_layout(rt.family.dataset_layout).evaluate_runtime(rt, data, split, batch_size)


def precision_deltas(bundle: str | Path, data: str | Path, task: str, split: str, reference: str,
                     precision: str, batch_size: int = 16) -> dict:
    """`precision` against `reference` per condition on `split` through ONNX Runtime on CPU:
    {split, metric, reference, precision, conditions: {cond: {reference, precision, delta_points}}},
    the headline metric's scores and the difference in points (negative: `precision` worse)."""
    key = HEADLINE[task]
    ref = accuracy_report(bundle, data, split, "ort-cpu", batch_size, precision=reference)["conditions"]
    got = accuracy_report(bundle, data, split, "ort-cpu", batch_size, precision=precision)["conditions"]
    conds = {c: {reference: r[key], precision: got[c][key], "delta_points": 100 * (got[c][key] - r[key])}
             for c, r in ref.items()}
    return {"split": split, "metric": key, "reference": reference, "precision": precision, "conditions": conds}


def delta_line(deltas: dict) -> str:
    """One line: `precision` − `reference` per condition, in points."""
    parts = ", ".join(f"{{{','.join(c)}}} {v['delta_points']:+.2f}" for c, v in deltas["conditions"].items())
    worst = min(v["delta_points"] for v in deltas["conditions"].values())
    return (f"{deltas['precision']} vs {deltas['reference']} on {deltas['split']} ({deltas['metric'].upper()}, "
            f"points): {parts}; worst {worst:+.2f}")


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
