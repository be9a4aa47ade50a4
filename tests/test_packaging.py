"""Every module under the mapped folders ships in the distribution (docs/ARCHITECTURE.md §1)."""

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
    from anymodal_testing.layering import PACKAGES

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "serve" in PACKAGES  # the table the layering rules read
    for folder in PACKAGES:
        assert folder == "anymodal" or folder not in conf["packages"], folder
    for folder in ROOT.iterdir():  # every top-level folder with Python is a mapped package or tests
        if (folder / "__init__.py").is_file():
            assert folder.name in PACKAGES, folder.name


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


def test_trt_extra_asks_for_a_pycuda_that_builds_on_cuda13():
    """pycuda < 2025.1.2 does not compile against CUDA 13 (cuCtxCreate's new
    signature; inducer/pycuda#485, fixed by #487 in v2025.1.2), where `pip install` builds it."""
    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    req = next(Requirement(r) for r in extras["trt"] if r.startswith("pycuda"))
    assert not req.specifier.contains("2025.1.1") and req.specifier.contains("2025.1.2")


def test_cpu_and_gpu_onnxruntime_never_installed_together():
    """onnxruntime and onnxruntime-gpu write the same package folder: the last one wins."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in extras:
        assert not {"onnxruntime", "onnxruntime-gpu"} <= _resolve(extras, name), name
    assert not {"onnxruntime", "onnxruntime-gpu"} & _resolve(extras, "dev")  # combinable with either
    lock = (ROOT / "requirements" / "dev-cpu.lock").read_text()
    assert "\nonnxruntime==" in lock and "onnxruntime-gpu" not in lock


def _package_data_globs():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return conf["package-dir"], conf.get("package-data", {})


def test_every_data_file_the_packages_read_is_package_data():
    """Non-Python files inside the package folders (the manifest schema) ship in the wheel."""
    dirs, data = _package_data_globs()
    for pkg, folder in dirs.items():
        for f in (ROOT / folder).iterdir():
            if f.is_file() and f.suffix == ".json":
                assert any(f.match(g) for g in data.get(pkg, [])), f"{f} is not in package-data for {pkg}"
    from importlib import resources

    from anymodal.runtime.manifest_schema import READABLE_VERSIONS

    for v in READABLE_VERSIONS:
        assert resources.files("anymodal.runtime").joinpath(f"manifest-v{v}.schema.json").is_file()


@pytest.mark.slow
def test_the_built_wheel_holds_the_manifest_schema_and_requires_jsonschema(tmp_path):
    import shutil
    import subprocess
    import zipfile

    dirs, _ = _package_data_globs()
    src = tmp_path / "src"  # a copy: building in place would write build/ into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md", *set(f.split("/")[0] for f in dirs.values())):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("anymodal-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert "anymodal/runtime/manifest-v1.schema.json" in z.namelist()
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: jsonschema" in meta


def test_the_lock_pins_only_index_releases():
    """Every entry of the dev/CI lock is `name==version` from the package index: no local path
    (pip-compile pins the project itself by the checkout's path, which a fresh clone elsewhere
    does not have; `make lock` drops that entry) and no URL."""
    lock = (ROOT / "requirements" / "dev-cpu.lock").read_text()
    entries = [ln for ln in lock.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert entries and all("==" in e and "@" not in e for e in entries), [e for e in entries if "==" not in e]
