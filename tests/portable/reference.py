"""Host side (torch): tiny MoMKE and DERL bundles plus the Predictions the runtime gives for
every pattern and the masked graph, written to a folder that `check.py` replays elsewhere.

    python tests/portable/reference.py OUT
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")  # anymodal_testing, when run as a script
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)


def _sibling(name: str):
    """A module of this folder, loaded by path: the folder never joins sys.path, so its files are
    not importable under bare names in the process that imports this one (the test suite)."""
    spec = importlib.util.spec_from_file_location(f"anymodal_portable_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_cases = _sibling("cases")
flatten_prediction, save_cases = _cases.flatten_prediction, _cases.save_cases

NAMES = {"a": "audio", "t": "text", "v": "visual"}
PATTERNS = ("a", "t", "v", "at", "av", "tv", "atv")


def build_bundles(out: Path) -> dict[str, Path]:
    from anymodal.export.bundle import write_bundle
    from anymodal_testing.helpers import make_derl, make_model, run_config

    return {"momke": write_bundle(make_model(), run_config(), out / "momke"),
            "derl": write_bundle(make_derl(), run_config("sentiment"), out / "derl")}


def utterance_cases(rng, dims: dict[str, int], L: int = 5) -> list[dict]:
    """Conversations of L utterances: each pattern, then per-utterance availability (masked)."""
    x = {m: rng.standard_normal((L, d)).astype(np.float32) for m, d in dims.items()}
    cases = [{"name": p, "kwargs": {NAMES[m]: x[m] for m in p}} for p in PATTERNS]
    present = {"audio": np.array([1, 0, 1, 1, 0], bool), "visual": np.array([0, 1, 1, 0, 1], bool)}
    cases.append({"name": "masked", "kwargs": {**{NAMES[m]: x[m] for m in "atv"}, "present": present}})
    return cases


def sequence_cases(rng, dims: dict[str, int], lengths: dict[str, int]) -> list[dict]:
    """One sample per pattern at the absent lengths, then per-token missingness (masked)."""
    x = {m: rng.standard_normal((lengths[m], d)).astype(np.float32) for m, d in dims.items()}
    cases = [{"name": p, "kwargs": {NAMES[m]: x[m] for m in p}} for p in PATTERNS]
    token_ok = np.ones(lengths["t"], bool)
    token_ok[::3] = False
    cases.append({"name": "masked", "kwargs": {**{NAMES[m]: x[m] for m in "atv"}, "present": {"t": token_ok}}})
    return cases


def copy_bundles(out: Path, bundles: dict[str, Path]) -> dict[str, Path]:
    """Bundles already exported (the test suite's session bundles), copied in beside the cases."""
    import shutil

    return {name: Path(shutil.copytree(path, out / name)) for name, path in bundles.items()}


def main(out: Path, bundles: dict[str, Path] | None = None) -> None:
    """bundles: {"momke": folder, "derl": folder} to record instead of exporting new ones."""
    from anymodal.runtime import Runtime

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases, outputs = [], []
    for name, path in (copy_bundles(out, bundles) if bundles else build_bundles(out)).items():
        rt = Runtime(path, backend="ort-cpu")
        b = rt.bundle
        made = (sequence_cases(rng, b.dims, b.absent_lengths) if not b.family.inputs.caller_sets_length
                else utterance_cases(rng, b.dims))
        for case in made:
            case["bundle"] = name
            cases.append(case)
            outputs.append(flatten_prediction(rt.predict(**case["kwargs"])))
    save_cases(out, cases, outputs)
    print(f"{len(cases)} cases from {len(set(c['bundle'] for c in cases))} bundles -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
