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
