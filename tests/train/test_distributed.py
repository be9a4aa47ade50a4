"""torchrun-style training of every registered family (the late-fusion example included, named in
$ANYMODAL_FAMILIES as a user would): 2 gloo processes on CPU equal the 1-process run (rt-train's
command in this process) with the same global batch, and only rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # two process starts with torch per family
TINY = ["--no-progress"]
ARGS = {
    "momke": ["--dataset", "iemocap4", "--hidden", "16", "--depth", "1", "--dropout", "0", "--epochs-stage1", "2",
              "--epochs-stage2", "2", "--batch-size", "6", "--patterns-per-step", "3", "--lr", "1e-3", *TINY],
    "derl": ["--hidden", "16", "--heads", "2", "--dropout", "0", "--epochs", "2", "--batch-size", "8",
             "--lr", "1e-3", *TINY],
    "latefusion": ["--epochs", "2", "--hidden", "8", "--batch-size", "6"],
}
# Exact parity, except where Adam amplifies rounding: a parameter whose gradient is zero in exact
# arithmetic (the attention key bias: softmax ignores q·b_k; DERL's MRF router bias) or sits at an
# L1 optimum (DERL's reconstruction biases) gets rounding noise of either summation order, which
# Adam turns into steps of up to lr. So: at most 1% of all elements may differ, each by at most
# the steps Adam took (lr × steps: 12 × 1e-3 MoMKE, 6 × 1e-3 DERL, 6 × 3e-3 late fusion); a
# rank that trained on its shard alone (no all-reduce) moves nearly every element by ~lr per step.
MAX_NOISY_SHARE, MAX_ADAM_STEPS = 0.01, 0.02


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], out: Path, world: int) -> list[subprocess.Popen]:
    import anymodal_testing

    port = str(_free_port())
    support = str(Path(anymodal_testing.__file__).parents[1])
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1",
                   ANYMODAL_FAMILIES="anymodal_testing.latefusion_family",
                   PYTHONPATH=os.pathsep.join(filter(None, [support, os.environ.get("PYTHONPATH")])))
        procs.append(subprocess.Popen([sys.executable, "-m", "anymodal.train.distributed", *args, "--out", str(out)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return procs


def _train_here(command, args: list[str]) -> None:
    """The one-process reference in this process (rt-train's command function, one thread like
    the ranks): saves a torch start per family."""
    import torch
    import typer

    app = typer.Typer()
    app.command()(command)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        app(args, standalone_mode=False)
    finally:
        torch.set_num_threads(threads)


def _params(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from anymodal.train.data.synth import SynthConfig, generate
    from anymodal.train.data.synth_mmsa import MmsaSynthConfig, generate_mmsa, parse_shapes

    root = tmp_path_factory.mktemp("dist-data")
    gcnet = generate(SynthConfig(conversations=30, min_len=3, max_len=7, dims=(6, 10, 8)), root / "gcnet")
    mmsa = generate_mmsa(MmsaSynthConfig(samples=40, shapes=parse_shapes("6x5,4x8,5x4")), root / "mmsa")
    return {"gcnet": gcnet, "mmsa": mmsa}


def test_every_family_is_covered():
    from anymodal.train.families import train_family_names
    from anymodal_testing import latefusion_family  # noqa: F401  (registers the example family)

    assert set(train_family_names()) == set(ARGS)


@pytest.mark.parametrize("family", list(ARGS))
def test_two_gloo_processes_equal_one_process_and_only_rank0_writes(family, datasets, tmp_path):
    from anymodal.train.families import get_train_family
    from anymodal_testing import latefusion_family  # noqa: F401

    args = [*ARGS[family], "--data", str(datasets[get_train_family(family).layout.name])]
    procs = _start([family, *args], tmp_path / "two", 2)
    _train_here(get_train_family(family).train_command, [*args, "--out", str(tmp_path / "one")])  # meanwhile
    for p in procs:
        output = p.communicate(timeout=240)[0].decode()
        assert p.returncode == 0, output
    one, two = _params(tmp_path / "one"), _params(tmp_path / "two")
    assert one.keys() == two.keys()
    differ = {k: int((~np.isclose(two[k], one[k], rtol=1e-4, atol=1e-5)).sum()) for k in one}
    total = sum(v.size for v in one.values())
    assert sum(differ.values()) <= MAX_NOISY_SHARE * total, {k: n for k, n in differ.items() if n}
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=0, atol=MAX_ADAM_STEPS, err_msg=k)
    assert any(not np.allclose(v, 0) for v in one.values())
    # the logged training losses (the ranks' weighted shares, summed) are the one-process ones
    first = [json.loads((tmp_path / w / "train_log.jsonl").read_text().splitlines()[0]) for w in ("one", "two")]
    for key in (k for k in first[0] if k.startswith("train_")):
        np.testing.assert_allclose(first[1][key], first[0][key], rtol=1e-3, err_msg=key)
    # rank 1 wrote nothing: the log has each epoch once, the folder the same files as one process
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    lines = (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "train_log.jsonl").read_text().splitlines()), lines
