"""The data TensorRT engines are calibrated (INT8) and parity-checked on: samples of the
training split the bundle records, read from `--calib-data` or from the run the bundle was
exported from, by the family's dataset layout (train/data/layout.py). Each sample becomes a
request, and the request the graph's feeds, exactly as it would be served (the family's input
kind). Never random features for calibration: scales fitted to noise clip real activations.
Only the fp32/fp16 parity check may fall back to random features (export/engine_parity.py),
and engines.json then says so."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import AnymodalError, CalibrationDataError
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.runtime.requests import MASKED, build_request

DEFAULT_SAMPLES = 64  # the first samples of the split; MinMax scales settle well before


@dataclass
class CalibrationSet:
    """Per-sample features {modality: [T_m, dim]} and where they came from (for engines.json)."""
    source: str
    samples: list[dict] = field(default_factory=list)

    def record(self) -> dict:
        return {"data": self.source, "samples": len(self.samples)}


def data_root(bundle: Bundle, calib_data: Path | None) -> Path:
    """`--calib-data`, else the data root in the config.json of the run the bundle came from
    (a folder, or a file for layouts stored as one file)."""
    if calib_data is not None:
        if not Path(calib_data).exists():
            raise CalibrationDataError(f"--calib-data {calib_data}: not a folder or file")
        return Path(calib_data)
    run = bundle.manifest.get("source_run")
    config = Path(run) / "config.json" if run else None
    if config is None or not config.is_file():
        raise CalibrationDataError(f"{bundle.path}: the bundle records no reachable training run "
                                   f"({'no source_run' if not run else 'no config.json in it'}); "
                                   "pass --calib-data <the dataset it was trained on>")
    root = json.loads(config.read_text()).get("data", {}).get("root")
    if not root or not Path(root).exists():
        raise CalibrationDataError(f"{config}: data root {root!r} is not reachable from here; "
                                   "pass --calib-data <the dataset>")
    return Path(root)


def training_set(bundle: Bundle, calib_data: Path | None, limit: int = DEFAULT_SAMPLES) -> CalibrationSet:
    """The recorded training split, read by the family's dataset layout."""
    from anymodal.train.data.layouts import get_layout  # numpy only: no torch

    info = bundle.manifest.get("data") or {}
    layout = get_layout(bundle.family.dataset_layout)
    try:
        source, samples = layout.calibration_samples(info, lambda: data_root(bundle, calib_data), limit)
    except CalibrationDataError:
        raise
    except AnymodalError as exc:  # the layout's DataError: no split recorded, unreadable data …
        raise CalibrationDataError(f"{bundle.path}: {exc}") from exc
    for m in MODALITIES:
        dim = samples[0][m].shape[-1] if samples else bundle.dims[m]
        if dim != bundle.dims[m]:
            raise CalibrationDataError(f"{source}: {MODALITY_NAMES[m]} features have {dim} dims, "
                                       f"the bundle's model takes {bundle.dims[m]}")
    return CalibrationSet(source, samples)


def graph_feeds(bundle: Bundle, graph: str, cal: CalibrationSet, max_seq: int, seed: int = 0):
    """One batch-1 feed per sample for `graph` (each array cut to the profile's max_seq), made by
    the input kind from a validated request: the graph's modalities, and for the masked graph
    mixed availability (the kind's calibration_present), as it is served."""
    family, config = bundle.family, bundle.model["config"]
    kind = family.inputs
    rng = np.random.default_rng(seed)
    mods = MODALITIES if graph == MASKED else tuple(graph)
    for s in cal.samples:
        arrays = {m: s[m][:max_seq] for m in mods}
        present = kind.calibration_present(arrays, rng) if graph == MASKED else None
        req = build_request(kind, bundle.dims, "float32", arrays, present=present)
        yield family.feeds(req, graph, bundle.dims, "float32", config)
