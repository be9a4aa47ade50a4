"""Run folders' checkpoints: atomic replace, weights tied to their config, typed errors."""

import json
import os

import pytest
import torch

from anymodal.runtime import atomic_fs
from anymodal.runtime.errors import DataError
from anymodal.train.checkpoint import WEIGHTS, load_run, save_run
from anymodal_testing.helpers import make_model


def test_save_then_load_round_trips_and_records_the_weights_hash(tmp_path):
    model = make_model()
    save_run(tmp_path, model, {"data": {}})
    config = json.loads((tmp_path / "config.json").read_text())
    assert len(config["weights_sha256"]) == 64
    loaded, _ = load_run(tmp_path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", WEIGHTS]  # no temp files


def test_a_save_killed_between_weights_and_config_is_detected(tmp_path, monkeypatch):
    save_run(tmp_path, make_model(seed=0), {"data": {}})
    real = atomic_fs.atomic_write_bytes

    def killed(path, data):  # the config's replace never happens
        raise KeyboardInterrupt

    monkeypatch.setattr("anymodal.train.checkpoint.atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        save_run(tmp_path, make_model(seed=1), {"data": {}})
    monkeypatch.setattr("anymodal.train.checkpoint.atomic_write_bytes", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", WEIGHTS]
    with pytest.raises(DataError, match=r"model\.safetensors: sha256 differs from the one in config\.json"):
        load_run(tmp_path)


def test_a_weights_write_that_fails_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_run(tmp_path, make_model(seed=0), {"data": {}})
    before = (tmp_path / WEIGHTS).read_bytes()

    def half_written(state, path):
        open(path, "wb").write(b"\x00" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("anymodal.train.checkpoint.save_file", half_written)
    with pytest.raises(OSError, match="No space"):
        save_run(tmp_path, make_model(seed=1), {"data": {}})
    assert (tmp_path / WEIGHTS).read_bytes() == before
    load_run(tmp_path)  # still the complete previous checkpoint


def test_modified_weights_and_bad_configs_are_data_errors(tmp_path):
    save_run(tmp_path, make_model(), {"data": {}})
    weights = tmp_path / WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256 differs"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(DataError, match=r"config\.json: not a readable JSON run config"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"model": {"kind": "momke"}}')
    with pytest.raises(DataError, match=r"config\.json: expected"):
        load_run(tmp_path)


def test_run_folder_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save_run(tmp_path / "run", make_model(), {"data": {}})
    finally:
        os.umask(old)
    for name in ("config.json", WEIGHTS):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o640
