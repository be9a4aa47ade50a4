"""The data TensorRT engines are calibrated (INT8) and parity-checked on: conversations of the
training split the bundle records, read from `--calib-data` or from the run the bundle was
exported from. Never random features for calibration: scales fitted to noise clip real
activations. Only the fp32/fp16 parity check may fall back to random features
(export/engine_parity.py), and engines.json then says so."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import CalibrationDataError
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES
from anymodal.runtime.requests import MASKED, UTTERANCES

DEFAULT_CONVERSATIONS = 64  # the first conversations of the split; MinMax scales settle well before


@dataclass
class CalibrationSet:
    """Per-conversation features {modality: [L, dim]} and where they came from (for engines.json)."""
    source: str
    samples: list[dict] = field(default_factory=list)

    def record(self) -> dict:
        return {"data": self.source, "conversations": len(self.samples)}


def data_root(bundle: Bundle, calib_data: Path | None) -> Path:
    """`--calib-data`, else the data root in the config.json of the run the bundle came from."""
    if calib_data is not None:
        if not Path(calib_data).is_dir():
            raise CalibrationDataError(f"--calib-data {calib_data}: not a folder")
        return Path(calib_data)
    run = bundle.manifest.get("source_run")
    config = Path(run) / "config.json" if run else None
    if config is None or not config.is_file():
        raise CalibrationDataError(f"{bundle.path}: the bundle records no reachable training run "
                                   f"({'no source_run' if not run else 'no config.json in it'}); "
                                   "pass --calib-data <the dataset folder it was trained on>")
    root = json.loads(config.read_text()).get("data", {}).get("root")
    if not root or not Path(root).is_dir():
        raise CalibrationDataError(f"{config}: data root {root!r} is not reachable from here; "
                                   "pass --calib-data <the dataset folder>")
    return Path(root)


def training_set(bundle: Bundle, calib_data: Path | None,
                 conversations: int = DEFAULT_CONVERSATIONS) -> CalibrationSet:
    """The recorded training split (GCNet layout, as the bundle was trained on)."""
    if bundle.family.inputs.name != UTTERANCES:  # the feeds below are conversations
        raise CalibrationDataError(f"calibration builds conversation (utterance-input) feeds; "
                                   f"{bundle.model['kind']} takes {bundle.family.inputs.name}: not implemented")
    info = bundle.manifest.get("data") or {}
    train = (info.get("splits") or {}).get("train")
    if not train or not info.get("dataset") or not info.get("features"):
        raise CalibrationDataError(f"{bundle.path}: the manifest records no training split "
                                   "(data.dataset, data.features, data.splits.train): re-export from the run folder")
    root = data_root(bundle, calib_data)
    from anymodal.train.data.gcnet import read_gcnet  # numpy only: no torch

    ds = read_gcnet(root, info["dataset"], tuple(info["features"]))
    convs = ds.split_by(train)[:conversations]
    for m in MODALITIES:
        if ds.dims[m] != bundle.dims[m]:
            raise CalibrationDataError(f"{root}: {MODALITY_NAMES[m]} features have {ds.dims[m]} dims, "
                                       f"the bundle's model takes {bundle.dims[m]}")
    return CalibrationSet(f"train split of {info['dataset']} ({len(train)} conversations)",
                          [{m: np.asarray(c.features[m], np.float32) for m in MODALITIES} for c in convs])


def graph_feeds(bundle: Bundle, graph: str, cal: CalibrationSet, max_seq: int, seed: int = 0):
    """One batch-1 feed per conversation for `graph` (cut to the profile's max_seq). The masked
    graph gets mixed availability (each utterance one of the seven patterns), as it is served."""
    names = {s["name"] for s in bundle.graphs[graph]["inputs"]}
    rng = np.random.default_rng(seed)
    for s in cal.samples:
        L = min(len(s["a"]), max_seq)
        feeds = {MODALITY_NAMES[m]: s[m][None, :L] for m in MODALITIES if MODALITY_NAMES[m] in names}
        feeds["mask"] = np.ones((1, L), bool)
        if "avail" in names:
            pats = rng.integers(len(ALL_PATTERNS), size=L) if graph == MASKED else None
            feeds["avail"] = np.array([[[m in ALL_PATTERNS[p] for m in MODALITIES] for p in pats]], bool) \
                if pats is not None else np.ones((1, L, 3), bool)
        yield feeds
