"""Target side (numpy + onnxruntime, no torch): replay the recorded cases with this
interpreter/CPU and compare every Prediction field with the host's (default atol 1e-5).

    python check.py REFERENCE_FOLDER [--atol 1e-5]
Exit 0 when every case agrees, 1 otherwise (each difference printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from pathlib import Path


def _sibling(name: str):
    """A module of this folder, loaded by path: the folder never joins sys.path, so its files are
    not importable under bare names in the process that imports this one (the test suite)."""
    spec = importlib.util.spec_from_file_location(f"anymodal_portable_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_cases = _sibling("cases")
compare_outputs, flatten_prediction, load_cases = _cases.compare_outputs, _cases.flatten_prediction, _cases.load_cases


def check(folder: Path, atol: float) -> list[str]:
    from anymodal.runtime import Runtime

    runtimes: dict[str, Runtime] = {}
    problems = []
    for case in load_cases(folder):
        rt = runtimes.get(case["bundle"]) or runtimes.setdefault(
            case["bundle"], Runtime(folder / case["bundle"], backend="ort-cpu"))
        got = flatten_prediction(rt.predict(**case["kwargs"]))
        found = compare_outputs(case["outputs"], got, atol)
        problems += [f"{case['bundle']}/{case['name']}: {p}" for p in found]
        print(f"{case['bundle']:>6} {case['name']:>6}  {'DIFFERS' if found else 'ok'}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    problems = check(args.folder, args.atol)
    for p in problems:
        print("  " + p)
    print("parity: " + ("FAILED" if problems else "all cases equal the host's"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
