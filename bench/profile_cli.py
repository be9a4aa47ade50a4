"""`rt-bench profile --out DIR`: the command around bench/profile.py (bundle, shapes, printing)."""

from __future__ import annotations

from pathlib import Path

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import InputError
from anymodal.runtime.families import DEFAULT_FAMILY

from .profile import profile_bench, summary_line

SHOWN_OPS = 8  # per graph on the console; DIR/profile.md has every op type


def bench_profile_command(conditions, bundle_dir: Path | None, model: str | None, batches, seq_lens, shapes,
                          threads: int | None, spinning: bool, out_dir: Path, console, calls: int = 200) -> list:
    if bundle_dir is None:
        from .default_bundle import default_bundle

        bundle_dir = default_bundle(lambda s: console.print(f"[dim]{s}[/dim]"), model or DEFAULT_FAMILY)[0]
    kind = Bundle(bundle_dir).model["kind"]
    if model is not None and model != kind:
        raise InputError(f"--model {model} but the bundle {bundle_dir} holds a {kind} model")
    if shapes is None:
        shapes = tuple((b, s) for b in batches for s in (seq_lens or (24,)))
    records = profile_bench(bundle_dir, conditions, out_dir, shapes, threads, calls, spinning,
                            progress=lambda s: console.print(f"[dim]{s}[/dim]"))
    for r in records:
        console.print(summary_line(r))
        for o in r["ops"][:SHOWN_OPS]:
            console.print(f"    {o['op']:<24} {o['nodes']:>4} nodes {o['us']:>9.1f} µs {100 * o['share']:>5.1f} %")
    console.print(f"per-op tables: {Path(out_dir) / 'profile.md'}")
    return records
