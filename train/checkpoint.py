"""Run folders: safetensors weights + JSON config + training log. Never pickles.

    RUN/config.json      {"model": {"kind", "config"}, "weights_sha256", "data": {...}, "train": {...}}
    RUN/model.safetensors
    RUN/train_log.jsonl  one JSON object per epoch
Both files are replaced atomically (temporary sibling, fsync, os.replace), weights first; the
config names the weights' sha256, so a save killed between the two replaces is detected on load.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from anymodal.runtime.atomic_fs import atomic_write, atomic_write_bytes
from anymodal.runtime.errors import BundleError, DataError
from anymodal.runtime.file_integrity import sha256_file

from .models import build_model

WEIGHTS = "model.safetensors"


def save_run(run: str | Path, model, meta: dict) -> Path:
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = atomic_write(run / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    config = {"model": {"kind": model.kind, "config": model.cfg.to_dict()},
              "weights_sha256": _sha256(weights), **meta}
    atomic_write_bytes(run / "config.json", json.dumps(config, indent=2).encode())
    return run


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except BundleError as exc:  # unreadable: same message, the run folder's error type
        raise DataError(str(exc)) from exc


def read_run_config(run: str | Path) -> dict:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise DataError(f"not a run folder (no config.json): {run}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON run config ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not {"kind", "config"} <= set(config["model"]):
        raise DataError(f"{path}: expected {{'model': {{'kind', 'config'}}, ...}}")
    return config


def load_run(run: str | Path):
    """Rebuild the model of a run folder with its trained weights, in eval mode."""
    run = Path(run)
    config = read_run_config(run)
    weights = run / WEIGHTS
    if not weights.is_file():
        raise DataError(f"run folder has no weights: {weights}")
    expected = config.get("weights_sha256")  # absent in run folders written before it was recorded
    if expected is not None and _sha256(weights) != expected:
        raise DataError(f"{weights}: sha256 differs from the one in config.json — the weights were "
                        "modified, or a save was interrupted; re-train or restore the run folder")
    model = build_model(config["model"]["kind"], config["model"]["config"])
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:  # strict, but with a message that names the keys
        raise DataError(f"{weights}: weights do not fit the config (missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]})")
    return model.eval(), config
