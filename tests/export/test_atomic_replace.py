"""Killing a writer never leaves a broken or missing bundle (docs/ARCHITECTURE.md §6).

Two kinds of kill: the real exporter (`rt-export`'s write_bundle) SIGKILLed by the test at random
times over an existing bundle, and the publish step SIGKILLed at every one of its filesystem
steps (deterministic: the swap itself is too short for random times to hit it often).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anymodal.runtime import atomic_fs
from anymodal.runtime.bundle import MANIFEST, Bundle
from anymodal.runtime.errors import BundleError

CHILD = Path(__file__).with_name("kill_child.py")
UMASK = "027"  # not the usual 022: the bundle's modes must follow it


def child(*args, env=None):
    return subprocess.Popen([sys.executable, str(CHILD), *map(str, args), UMASK], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def file_table(b: Path) -> dict:
    return json.loads((b / MANIFEST).read_text())["files"]


def assert_complete(b: Path) -> dict:
    """Every graph of the bundle at `b` verifies against its manifest; returns its file table."""
    bundle = Bundle(b)
    for g in bundle.graphs:
        bundle.graph_path(g)
    return bundle.manifest["files"]


def marked_copy(src: Path, dst: Path, mark: str) -> Path:
    """A complete bundle that differs from `src` by a manifest field (manifests are not hashed)."""
    shutil.copytree(src, dst)
    m = json.loads((dst / MANIFEST).read_text())
    m["test_mark"] = mark
    (dst / MANIFEST).write_text(json.dumps(m))
    return dst


def mark(b: Path) -> str | None:
    return json.loads((b / MANIFEST).read_text()).get("test_mark")


def leftovers(b: Path) -> list[str]:
    return sorted(p.name for p in b.parent.iterdir() if p.name != b.name)


def run_publish(src, out, step, env=None):
    p = child("publish", src, out, step, env=env)
    stdout, stderr = p.communicate(timeout=120)
    return p.returncode, stdout, stderr


SWAP_STEPS = 6  # the last steps of a publish: the exchange / renames, the old folder's removal, fsyncs


@pytest.mark.parametrize("every_step", [  # every step: one child process per step, ~12 s each way
    False, pytest.param(True, marks=[pytest.mark.slow, pytest.mark.fuzz])], ids=["swap-steps", "every-step"])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_publish_killed_at_its_steps_leaves_the_old_or_the_new_bundle(small_bundle, tmp_path, exchange,
                                                                     every_step):
    """make test: the swap's own steps plus two random earlier ones; make fuzz: every step."""
    env = {} if exchange else {"ANYMODAL_TEST_NO_EXCHANGE": "1"}
    new = marked_copy(small_bundle, tmp_path / "src" / "new", "new")
    out = marked_copy(small_bundle, tmp_path / "probe" / "bundle", "old")
    rc, stdout, stderr = run_publish(new, out, 0, env)
    assert rc == 0, stderr
    n_steps = int(stdout.split()[-1])
    assert mark(out) == "new" and leftovers(out) == []
    outcomes = {"old": 0, "new": 0}
    steps = list(range(1, n_steps + 1))
    if not every_step:
        steps = sorted(random.Random(n_steps).sample(steps[:-SWAP_STEPS], 2) + steps[-SWAP_STEPS:])
    for step in steps:
        out = marked_copy(small_bundle, tmp_path / f"k{step}" / "bundle", "old")
        rc, _, stderr = run_publish(new, out, step, env)
        assert rc == -signal.SIGKILL, stderr
        if not exchange and not out.exists():  # killed between the two renames
            with pytest.raises(BundleError, match=r"previous bundle at .*\.bundle\.prev"):
                Bundle(out)
            atomic_fs.recover_interrupted(out)  # what the next publish does first
        outcomes[mark(out)] += 1
        assert_complete(out)
        atomic_fs.recover_interrupted(out)  # a finished two-rename swap's .prev is removed
        atomic_fs.remove_stale_temps(out)  # the killed child's temporary folder
        assert leftovers(out) == []
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes


def _check_after_kill(out: Path, old_table: dict, outcomes: dict) -> None:
    table = assert_complete(out)
    outcomes["old" if table == old_table else "new"] += 1
    if table != old_table:  # a new bundle: written with the child's umask
        for p in [out, *out.rglob("*")]:
            assert p.stat().st_mode & 0o777 == (0o750 if p.is_dir() else 0o640), p
    atomic_fs.remove_stale_temps(out)  # the killed child's temporary folder
    assert leftovers(out) == []


def _kill_exporters(small_bundle, root: Path, n: int, max_delay: float, parallel: int) -> dict:
    """n exporters, each over its own copy of an existing bundle, SIGKILLed after a random delay
    drawn from [0, max_delay] once its model is built; `parallel` run at a time."""
    rng = random.Random(12)
    old_table = file_table(small_bundle)
    outcomes = {"old": 0, "new": 0}
    todo = [(i, rng.uniform(0, max_delay)) for i in range(n)]
    running = []  # (process, bundle, kill time)
    while todo or running:
        while todo and len(running) < parallel:
            i, delay = todo.pop(0)
            out = shutil.copytree(small_bundle, root / f"k{i}" / "bundle")
            p = child("export", out, 1)
            assert p.stdout.readline().strip() == "started", p.stderr.read()
            running.append((p, out, time.monotonic() + delay))
        running.sort(key=lambda r: r[2])
        p, out, kill_at = running.pop(0)
        while p.poll() is None and time.monotonic() < kill_at:
            time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=300)
        _check_after_kill(out, old_table, outcomes)
    print(f"killed exporters: {outcomes}")
    return outcomes


@pytest.mark.slow  # three exporter processes killed mid-write (8 s); make test runs it
def test_exporter_killed_at_3_random_points_leaves_a_complete_bundle(small_bundle, tmp_path):
    outcomes = _kill_exporters(small_bundle, tmp_path, n=3, max_delay=10.0, parallel=3)
    assert sum(outcomes.values()) == 3


@pytest.mark.slow
@pytest.mark.fuzz  # ~30 s of exports: `make fuzz`, with the other long robustness runs
def test_exporter_killed_at_20_random_points_leaves_a_complete_bundle(small_bundle, tmp_path):
    t0 = time.monotonic()  # one uninterrupted export first: its duration here spreads the kills
    p = child("export", shutil.copytree(small_bundle, tmp_path / "full" / "bundle"), 1)
    assert p.stdout.readline().strip() == "started", p.stderr.read()
    assert p.wait(timeout=600) == 0, p.stderr.read()
    duration = time.monotonic() - t0
    outcomes = _kill_exporters(small_bundle, tmp_path, n=20, max_delay=1.1 * duration, parallel=2)
    assert sum(outcomes.values()) == 20 and outcomes["old"] > 0


def test_publish_over_a_file_or_foreign_folder_is_refused(tmp_path, small_model):
    from anymodal.export.bundle import write_bundle
    from anymodal.runtime.errors import ExportError

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an anymodal bundle"):
        write_bundle(small_model, {}, foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_atomic_file_write_keeps_the_old_file_on_failure_and_follows_the_umask(tmp_path):
    target = tmp_path / "config.json"
    atomic_fs.atomic_write_bytes(target, b"old")

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_fs.atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]
    old = os.umask(0o077)
    try:
        atomic_fs.atomic_write_bytes(target, b"new")
        folder = atomic_fs.make_temp_dir(tmp_path / "b")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
