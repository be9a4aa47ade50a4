"""Run folders: safetensors weights + JSON config + training log. Never pickles.

    RUN/config.json      {"model": {"kind", "config"}, "data": {...}, "train": {...}}
    RUN/model.safetensors
    RUN/train_log.jsonl  one JSON object per epoch
"""

from __future__ import annotations

import json
from pathlib import Path

from anymodal.runtime.errors import DataError
from safetensors.torch import load_file, save_file

from .models import build_model


def save_run(run: str | Path, model, meta: dict) -> Path:
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run / "model.safetensors"))
    config = {"model": {"kind": model.kind, "config": model.cfg.to_dict()}, **meta}
    (run / "config.json").write_text(json.dumps(config, indent=2))
    return run


def read_run_config(run: str | Path) -> dict:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise DataError(f"not a run folder (no config.json): {run}")
    return json.loads(path.read_text())


def load_run(run: str | Path):
    """Rebuild the model of a run folder with its trained weights, in eval mode."""
    run = Path(run)
    config = read_run_config(run)
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise DataError(f"run folder has no weights: {weights}")
    model = build_model(config["model"]["kind"], config["model"]["config"])
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:  # strict, but with a message that names the keys
        raise DataError(f"{weights}: weights do not fit the config (missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]})")
    return model.eval(), config
