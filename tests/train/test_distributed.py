"""torchrun-style training: 2 gloo processes on CPU equal the 1-process run with the same global
batch (parameters allclose), and only rank 0 writes the run folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # three process starts with torch (~20 s on 2 cores)
ARGS = ["momke", "--dataset", "iemocap4", "--hidden", "16", "--depth", "1", "--dropout", "0",
        "--epochs-stage1", "2", "--epochs-stage2", "2", "--batch-size", "6", "--patterns-per-step", "3",
        "--lr", "1e-3", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(data: Path, out: Path, world: int) -> None:
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "anymodal.train.distributed", *ARGS,
                                       "--data", str(data), "--out", str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        output = p.communicate(timeout=240)[0].decode()
        assert p.returncode == 0, output


def _params(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "model.safetensors"))


def test_two_gloo_processes_equal_one_process_and_only_rank0_writes(tmp_path):
    from anymodal.train.data.synth import SynthConfig, generate

    data = generate(SynthConfig(conversations=30, min_len=3, max_len=7, dims=(6, 10, 8)), tmp_path / "data")
    _train(data, tmp_path / "one", 1)
    _train(data, tmp_path / "two", 2)
    one, two = _params(tmp_path / "one"), _params(tmp_path / "two")
    init = _params(tmp_path / "one")
    assert one.keys() == two.keys()
    for k in one:
        a, b = one[k], two[k]
        if k == "experts.qkv_b":
            # the key bias adds q·b_k to every score of a query: softmax ignores it, so its gradient
            # is zero in exact arithmetic and rounding noise of either summation order, which Adam
            # turns into ±lr steps. Compare the query and value biases only. [E, depth, 3d]
            d = a.shape[-1] // 3
            a, b = np.delete(a, np.s_[d:2 * d], axis=-1), np.delete(b, np.s_[d:2 * d], axis=-1)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=k)
    assert any(not np.allclose(v, 0) for v in init.values())
    # rank 1 wrote nothing: the log has each epoch once, the folder the same files as one process
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    lines = (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "train_log.jsonl").read_text().splitlines()), lines
