"""Python API behind `rt-export`."""

from __future__ import annotations

from pathlib import Path

from .bundle import write_bundle


def export_run_folder(run: str | Path, out: str | Path, precisions=("fp32",),
                      kernels: str = "standard", max_drop: float = 1.0, int8_mode: str = "dynamic") -> Path:
    from anymodal.train.checkpoint import load_run

    model, config = load_run(run)
    config = {**config, "source_run": str(Path(run).resolve())}  # for rt-bench's PyTorch reference
    return write_bundle(model, config, out, precisions, kernels=kernels, max_drop=max_drop, int8_mode=int8_mode)
