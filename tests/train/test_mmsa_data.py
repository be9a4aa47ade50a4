"""The MMSA reader, the synthetic MMSA writer and the missing-token simulation."""

import pickle

import numpy as np
import pytest

from anymodal.runtime.errors import DataError
from anymodal.train.data.missing import drop_tokens, rate_avail, training_avail
from anymodal.train.data.mmsa import read_mmsa
from anymodal.train.data.synth_mmsa import MmsaSynthConfig, generate_mmsa, parse_shapes
from anymodal_testing.format_samples import write_mmsa_sample


def test_reads_a_distributed_style_pickle(tmp_path):
    path = write_mmsa_sample(tmp_path / "unaligned_50.pkl")
    sets = read_mmsa(path)
    raw = pickle.loads(path.read_bytes())
    tr = sets["train"]
    assert len(tr) == 5 and len(sets["valid"]) == 3 and tr.dims == (5, 16, 7)
    assert np.isfinite(tr.feats["a"]).all() and tr.feats["a"][0, 0, 0] == 0.0  # -inf -> 0
    assert (tr.masks["t"].sum(1) == raw["train"]["text_bert"][:, 1].sum(1)).all()
    assert (tr.masks["a"].sum(1) == np.array(raw["train"]["audio_lengths"])).all()
    assert tr.labels.dtype == np.float32 and tr.ids[0] == "vid0$_$0"
    assert read_mmsa(tmp_path)["test"].dims == (5, 16, 7)  # a folder with one pickle works too


def test_shared_mmsa_sample_reads(shared_dir):
    sets = read_mmsa(shared_dir / "fixtures" / "format-samples" / "mmsa" / "MOSI" / "unaligned_50.pkl")
    assert sets["train"].dims == (5, 768, 20)
    assert sets["train"].feats["a"].shape[1] == 375 and np.isfinite(sets["train"].feats["a"]).all()


def test_malicious_mmsa_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps({"train": Evil()}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_mmsa(path)


def test_bad_mmsa_files_name_the_problem(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"train": {}, "valid": {}}))
    with pytest.raises(DataError, match="expected a dict with train, valid, test"):
        read_mmsa(path)
    write_mmsa_sample(path)
    data = pickle.loads(path.read_bytes())
    del data["valid"]["vision_lengths"]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"x.pkl\[valid\]: missing field 'vision_lengths'"):
        read_mmsa(path)
    write_mmsa_sample(path)
    data = pickle.loads(path.read_bytes())
    data["test"]["vision"] = data["test"]["vision"][..., :3]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="feature dims differ between splits"):
        read_mmsa(path)
    del data["train"]["text"]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="only 'text_bert' token ids"):
        read_mmsa(path)
    write_mmsa_sample(path)
    data = pickle.loads(path.read_bytes())
    data["test"]["vision"] = np.zeros((2, 4, 7), np.float32)  # wrong sample count
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"\[test\].vision: expected float \[3, T, dim\]"):
        read_mmsa(path)


def test_synthetic_mmsa_layout_round_trips(tmp_path):
    generate_mmsa(MmsaSynthConfig(samples=40, shapes=parse_shapes("20x5,12x32,24x8")), tmp_path)
    sets = read_mmsa(tmp_path)
    assert [len(sets[s]) for s in ("train", "valid", "test")] == [24, 6, 10]
    tr = sets["train"]
    assert tr.dims == (5, 32, 8) and tr.feats["v"].shape[1] == 24
    assert (tr.feats["a"][~tr.masks["a"]] == 0).all()  # zero padding
    assert np.abs(tr.labels).max() <= 3
    with pytest.raises(DataError, match="LENxDIM"):
        parse_shapes("20x5,12")


def test_drop_tokens_drops_the_requested_fraction_and_never_padding():
    rng = np.random.default_rng(0)
    lengths = np.array([10, 7, 1, 20])
    mask = np.arange(20)[None] < lengths[:, None]
    for rate in (0.0, 0.3, 0.5, 0.9, 1.0):
        avail = drop_tokens(mask, np.full(4, rate), rng)
        assert not (avail & ~mask).any()  # padding never becomes available
        dropped = (mask & ~avail).sum(1)
        assert (dropped == np.round(rate * lengths)).all()


def test_training_avail_picks_half_the_samples_with_fresh_draws():
    rng = np.random.default_rng(1)
    masks = {m: np.ones((100, 30), bool) for m in "atv"}
    a1, a2 = training_avail(masks, rng), training_avail(masks, rng)
    touched = np.zeros(100, bool)
    for m in "atv":
        touched |= ~a1[m].all(1)
    assert touched.sum() <= 50 and touched.sum() >= 45  # U(0,1) rates rarely round to 0
    assert any((a1[m] != a2[m]).any() for m in "atv")
    r = rate_avail(masks, 0.5, seed=3)
    assert all((r[m].sum(1) == 15).all() for m in "atv")
    assert all((r[m] == rate_avail(masks, 0.5, seed=3)[m]).all() for m in "atv")
