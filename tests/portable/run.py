"""Run the torch-free runtime on another interpreter or CPU architecture and compare it with
this machine's results (docs/ARCHITECTURE.md §10, docs/jetson.md).

    python tests/portable/run.py --target py310      # JetPack 6's Python, from a local python3.10
    python tests/portable/run.py --target aarch64    # arm64 Debian root filesystem under qemu-user

Steps: build the wheel; record reference cases on the host (reference.py, needs torch);
prepare the target environment (cached outside the repository under $ANYMODAL_CACHE,
default ~/.cache/anymodal); install the wheel with its `cpu` extra there; run the torch-free
runtime tests and the parity replay (check.py). Exit 0 on success, 1 on a failure, 77 when the
target cannot be prepared on this machine (the reason is printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SKIP = 77  # the conventional 'skipped' exit status (automake)
# tests that import neither torch nor a torch-made fixture
TORCH_FREE_TESTS = ["tests/runtime/test_patterns.py", "tests/runtime/test_metrics.py"]
# onnxruntime >= 1.28's aarch64 wheels crash at import under qemu-user 7.2 (Debian 12's);
# whether qemu or the wheel is at fault needs arm64 hardware to tell. 1.27.0 is the newest that runs.
AARCH64_ORT = "1.27.0"
CACHE = Path(os.environ.get("ANYMODAL_CACHE", Path.home() / ".cache" / "anymodal"))


class Unavailable(Exception):
    """The target cannot be prepared here (missing tool, no permission): a skip, not a failure."""


def sh(cmd: list[str], timeout: float, **kw) -> None:
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, timeout=timeout, **kw)


def prepare(cmd: list[str], timeout: float, **kw) -> None:
    """A step that sets the target up (venv, downloads): its failure is a skip with the reason,
    not a test failure — a registry that did not answer says nothing about the code."""
    try:
        sh(cmd, timeout, **kw)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"could not prepare the target: {exc}") from exc


def build_wheel(out: Path) -> Path:
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT],
       timeout=300)
    return next(out.glob("anymodal-*.whl"))


# -- py310 -------------------------------------------------------------------------------------
def find_python310() -> str:
    """A python3.10 that runs: on PATH, or one of pyenv's installed versions."""
    candidates = [shutil.which("python3.10")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(str(p) for p in Path(root).glob("versions/3.10*/bin/python3.10"))
    for c in filter(None, candidates):
        probe = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return c
    raise Unavailable("no working python3.10 (on PATH or installed with pyenv)")


def run_py310(wheel: Path, work: Path) -> None:
    python = find_python310()
    venv = CACHE / "py310-venv"
    if not (venv / "bin" / "python").exists():
        prepare([python, "-m", "venv", venv], timeout=120)
    py = venv / "bin" / "python"
    prepare([py, "-m", "pip", "install", "-q", f"{wheel}[cpu]", "pytest"], timeout=600)
    prepare([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel], timeout=300)  # same version
    sh([py, "-c", "import sys; assert sys.version_info[:2] == (3, 10), sys.version"], timeout=60)
    sh([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TORCH_FREE_TESTS], timeout=600, cwd=work)
    sh([py, work / "tests" / "portable" / "check.py", work / "ref"], timeout=600)


# -- aarch64 ---------------------------------------------------------------------------------
def _mirror() -> str:
    """The Debian mirror this machine's apt uses (so nothing is hard-coded here)."""
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            for line in f.read_text().splitlines():
                parts = line.split()
                if line.startswith("URIs:") and len(parts) > 1 and "security" not in parts[1]:
                    return parts[1]
                if line.startswith("deb ") and "debian" in line and "security" not in line:
                    return parts[1]
        except OSError:
            continue
    raise Unavailable("no Debian mirror found in /etc/apt sources for debootstrap")


def _binfmt_ready() -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (debootstrap, chroot, bind mounts)")
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} not found (Debian packages: debootstrap qemu-user-static binfmt-support)")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(binfmt)], capture_output=True)
    if not (binfmt / "qemu-aarch64").exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        raise Unavailable("binfmt_misc has no qemu-aarch64 handler (install qemu-user-static and binfmt-support)")


def _rootfs() -> Path:
    rootfs = CACHE / "aarch64-bookworm"
    if (rootfs / ".ready").exists():
        return rootfs
    tmp = CACHE / "aarch64-bookworm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    prepare(["debootstrap", "--arch=arm64", "--variant=minbase",
        "--include=python3,python3-venv,python3-pip,ca-certificates", "bookworm", tmp, _mirror()], timeout=1800)
    shutil.rmtree(rootfs, ignore_errors=True)
    tmp.rename(rootfs)
    (rootfs / ".ready").touch()
    return rootfs


class _Mounted:
    """/proc, /sys and /dev bound into the root filesystem (onnxruntime reads the CPU list
    from /sys); always unmounted again."""

    def __init__(self, rootfs: Path):
        self.points = [(Path(p), rootfs / p.lstrip("/")) for p in ("/proc", "/sys", "/dev")]

    def __enter__(self):
        for src, dst in self.points:
            dst.mkdir(parents=True, exist_ok=True)
            sh(["mount", "--bind", src, dst], timeout=30)
        return self

    def __exit__(self, *exc):
        for _, dst in reversed(self.points):
            subprocess.run(["umount", "-l", str(dst)], capture_output=True)


def run_aarch64(wheel: Path, work: Path) -> None:
    _binfmt_ready()
    rootfs = _rootfs()
    shutil.copy("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")  # pip needs name resolution
    # pip inside trusts what pip here trusts (a site may add its own CA to the system store)
    host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():
        shutil.copy(host_ca, rootfs / "etc" / "ssl" / "certs" / "host-ca-bundle.crt")
    inside = rootfs / "opt" / "anymodal-check"
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(work, inside)
    env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8",
           *(["PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt"] if host_ca.is_file() else [])]
    venv = "/opt/anymodal-venv"

    def chroot(*cmd, timeout=600, cwd="/", step=sh):
        step(["chroot", rootfs, *env, "sh", "-c", f"cd {cwd} && " + " ".join(cmd)], timeout=timeout)

    with _Mounted(rootfs):
        if not (rootfs / venv.lstrip("/") / "bin" / "python").exists():
            chroot("python3", "-m", "venv", venv, timeout=300, step=prepare)
        whl = f"/opt/anymodal-check/{wheel.name}"
        chroot(f"{venv}/bin/pip", "install", "-q", "--disable-pip-version-check", f"'{whl}[cpu]'", "pytest",
               f"onnxruntime=={AARCH64_ORT}", timeout=1200, step=prepare)
        chroot(f"{venv}/bin/pip", "install", "-q", "--no-deps", "--force-reinstall", f"'{whl}'", timeout=300,
               step=prepare)
        chroot(f"{venv}/bin/python", "-c", "'import platform; assert platform.machine() == \"aarch64\"'")
        chroot(f"{venv}/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *TORCH_FREE_TESTS,
               cwd="/opt/anymodal-check")
        chroot(f"{venv}/bin/python", "/opt/anymodal-check/tests/portable/check.py", "/opt/anymodal-check/ref")


TARGETS = {"py310": run_py310, "aarch64": run_aarch64}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=sorted(TARGETS), required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anymodal-portable-") as tmp:
        work = Path(tmp)
        try:
            wheel = build_wheel(work)
            # the tests run from a folder without the source tree, so the installed wheel is imported
            shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")  # pytest's markers
            sh([sys.executable, HERE / "reference.py", work / "ref"], timeout=600)
            TARGETS[args.target](wheel, work)
        except Unavailable as exc:
            print(f"SKIPPED {args.target}: {exc}")
            return SKIP
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"FAILED {args.target}: {exc}")
            return 1
    print(f"{args.target}: passed in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
