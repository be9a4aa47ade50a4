"""Every module under the mapped folders ships in the distribution (DESIGN §1)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def test_every_python_file_is_in_a_listed_package():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, dirs = set(conf["packages"]), conf["package-dir"]
    assert set(dirs) == packages
    for pkg, folder in dirs.items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{folder} is not a package"
    folder_to_pkg = {(ROOT / f).resolve(): p for p, f in dirs.items()}
    for folder in folder_to_pkg:
        for py in folder.rglob("*.py"):
            assert py.parent.resolve() in folder_to_pkg, f"{py} is in no listed package"


def test_no_top_level_package_named_like_a_folder():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name in ("runtime", "export", "kernels", "train", "bench"):
        assert name not in conf["packages"]


def test_installed_modules_come_from_the_mapped_folders():
    import anymodal.runtime.patterns as patterns

    assert Path(patterns.__file__).resolve() == (ROOT / "runtime" / "patterns.py").resolve()


def _resolve(extras: dict, name: str) -> set[str]:
    """Requirement names an extra pulls in, following anymodal[...] self-references."""
    out = set()
    for req in extras[name]:
        if req.startswith("anymodal["):
            for sub in req[len("anymodal["):req.index("]")].split(","):
                out |= _resolve(extras, sub.strip())
        else:
            out.add(req.split(">")[0].split("=")[0].split("<")[0].strip())
    return out


def test_cpu_and_gpu_onnxruntime_never_installed_together():
    """onnxruntime and onnxruntime-gpu write the same package folder: the last one wins."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in extras:
        assert not {"onnxruntime", "onnxruntime-gpu"} <= _resolve(extras, name), name
    assert not {"onnxruntime", "onnxruntime-gpu"} & _resolve(extras, "dev")  # combinable with either
    assert "'.[cpu,dev]'" in (ROOT / "Makefile").read_text()
