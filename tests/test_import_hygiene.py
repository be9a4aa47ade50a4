"""No folder of the repository is importable under a bare top-level name, every module exists
once, and static tools see `anymodal.*` (docs/ARCHITECTURE.md §1).

Each check is a function over a live interpreter's state, run here on the test process and, with
the fault planted, in a child that puts the repository root on sys.path as `python -m` from the
root would: the check must report it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from anymodal_testing.hygiene import BARE_NAMES, ROOT, duplicate_classes, import_every_module, shadowed_names


def test_no_repository_folder_is_importable_under_a_bare_name():
    assert shadowed_names() == {}


def test_hugging_face_kernels_is_the_kernels_package_here():
    """transformers imports Hugging Face's `kernels`; it must not find ./kernels."""
    import importlib.util

    spec = importlib.util.find_spec("kernels")
    if spec is not None:  # installed with transformers >= 5 (the lock has it)
        assert Path(spec.origin).resolve() != ROOT / "kernels" / "__init__.py", spec.origin


def test_every_module_exists_once():
    failed = import_every_module()
    assert failed == {}, failed
    assert duplicate_classes("AnymodalError") == []
    from anymodal.runtime.errors import AnymodalError

    assert AnymodalError.__module__ == "anymodal.runtime.errors"


_CHILD = """
import json, sys
from anymodal_testing.hygiene import shadowed_names, duplicate_classes
import anymodal.runtime.errors
sys.path.insert(0, sys.argv[1])  # what `python -m ...` or `python -c ...` from the root does
import runtime.errors  # the planted fault: a second copy of the module
print(json.dumps({"shadowed": shadowed_names(), "duplicates": duplicate_classes("AnymodalError")}))
"""


def test_the_checks_catch_the_planted_fault():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "support")}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)], capture_output=True, text=True, env=env,
                         cwd=ROOT / "tests")
    assert res.returncode == 0, res.stderr[-2000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(found["shadowed"]) == set(BARE_NAMES) - {"anymodal"}, found["shadowed"]  # anymodal: imported
    assert found["duplicates"] == ["runtime.errors"], found


def test_a_child_started_from_the_root_does_not_see_the_folders():
    """The suite's children (`python -c` with cwd at the root) run with PYTHONSAFEPATH (conftest)."""
    code = "import json; from anymodal_testing.hygiene import shadowed_names; print(json.dumps(shadowed_names()))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "support")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout) == {}


def test_the_editable_install_is_plain_paths_for_static_tools():
    """Type checkers read the path lines of .pth files, not import hooks: the install is setuptools'
    strict editable mode (a link tree under build/), never an `import …` finder."""
    site = Path(sysconfig.get_paths()["purelib"])
    pths = sorted(site.glob("__editable__*anymodal*.pth"))
    if not pths:  # a regular (wheel) install: nothing to check
        return
    for pth in pths:
        for line in filter(None, map(str.strip, pth.read_text().splitlines())):
            assert not line.startswith("import"), f"{pth.name}: an import hook hides anymodal from static tools"
            assert Path(line).resolve() != ROOT, f"{pth.name}: the repository root on sys.path"
            assert (Path(line) / "anymodal" / "runtime" / "errors.py").exists(), line
