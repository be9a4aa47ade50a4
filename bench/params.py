"""`rt-report params`: parameter efficiency from a bundle's manifest (torch-free)."""

from __future__ import annotations

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.families import get_family
from anymodal.runtime.patterns import ALL_PATTERNS

from .run import bundle_bytes


def params_report(bundle_dir) -> dict:
    b = Bundle(bundle_dir)
    p = b.manifest["params"]
    return {"model": b.model["kind"], "total": p["total"], "served": p["served"],
            "total_without_text_encoder": p.get("total_without_text_encoder", p["total"]),
            "components": p["components"], "active": {k: p["active"][k] for k in ALL_PATTERNS},
            "bytes": bundle_bytes(b), "fp32_param_bytes": 4 * p["served"]}


def params_rows(rep: dict):
    header = ["item", "parameters", "share of served"]
    family = get_family(rep["model"])
    rows = [[f"total (incl. {family.training_only_label})", f"{rep['total']:,}", ""],
            ["total without text encoder", f"{rep['total_without_text_encoder']:,}", ""],
            ["served (all graphs)", f"{rep['served']:,}", "100.0%"]]
    not_served = family.training_only  # training-only parts, in no graph
    rows += [[f"  {k}", f"{v:,}", "training only" if k in not_served else f"{100 * v / rep['served']:.1f}%"]
             for k, v in rep["components"].items()]
    rows += [[f"active {{{','.join(k)}}}", f"{v:,}", f"{100 * v / rep['served']:.1f}%"]
             for k, v in rep["active"].items()]
    for prec, n in rep["bytes"].items():
        rows.append([f"bundle bytes {prec}", "not exported" if n is None else f"{n:,}",
                     "" if n is None else f"{n / rep['fp32_param_bytes']:.2f}× fp32 params"])
    return header, rows
