import numpy as np
import pytest

from anymodal.runtime.errors import DataError
from anymodal.train.data.batching import collate
from anymodal.train.data.gcnet import read_gcnet
from anymodal.train.data.specs import SYNTH_FEATURES
from anymodal.train.data.splits import make_splits, session_of
from anymodal.train.data.synth import SynthConfig, generate
from anymodal_testing.format_samples import SAMPLE_FEATURES, write_iemocap_sample, write_mosi_sample


def test_leave_one_session_out_folds(tmp_path):
    ds = read_gcnet(write_iemocap_sample(tmp_path), "iemocap4", SAMPLE_FEATURES)
    for k in range(1, 6):
        sp = make_splits(ds, fold=k)
        assert {session_of(c) for c in sp["test"]} == {k}
        assert all(session_of(c) != k for c in sp["train"] + sp["val"])
        assert sp["val"] and not set(sp["val"]) & set(sp["train"])
    with pytest.raises(DataError, match="1..5"):
        make_splits(ds, fold=6)


def test_mosi_uses_distributed_splits_and_refuses_folds(tmp_path):
    ds = read_gcnet(write_mosi_sample(tmp_path), "mosi", SAMPLE_FEATURES)
    assert make_splits(ds)["val"] == ["vidD"]
    with pytest.raises(DataError, match="IEMOCAP"):
        make_splits(ds, fold=1)


def test_collate_pads_with_mask(tmp_path):
    ds = read_gcnet(write_mosi_sample(tmp_path), "mosi", SAMPLE_FEATURES)
    b = collate([ds.conversations["vidC"], ds.conversations["vidE"]])  # 2 and 5 utterances
    assert b.features["t"].shape == (2, 5, 10)
    assert b.mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert np.all(b.features["a"][0, 2:] == 0)


@pytest.mark.parametrize("task,dataset", [("emotion4", "iemocap4"), ("emotion6", "iemocap6"),
                                          ("sentiment", "mosi")])
def test_synthetic_data_reads_back_in_its_layout(tmp_path, task, dataset):
    generate(SynthConfig(task=task, conversations=20, dims=(4, 6, 3)), tmp_path)
    ds = read_gcnet(tmp_path, dataset, SYNTH_FEATURES)
    assert ds.dims == {"a": 4, "t": 6, "v": 3}
    assert len(ds.conversations) == 20
    if dataset.startswith("iemocap"):
        assert {session_of(c) for c in ds.conversations} == {1, 2, 3, 4, 5}
        assert make_splits(ds, fold=2)["test"]
    else:
        assert all(ds.splits[k] for k in ("train", "val", "test"))


def test_synthetic_latent_emotion_persists(tmp_path):
    generate(SynthConfig(conversations=40), tmp_path)
    ds = read_gcnet(tmp_path, "iemocap4", SYNTH_FEATURES)
    same = [np.mean(c.labels[1:] == c.labels[:-1]) for c in ds.conversations.values()]
    assert np.mean(same) > 0.7  # sticky chain (stay=0.8 plus chance repeats)


def test_synth_rejects_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown synthetic task"):
        generate(SynthConfig(task="emotion5"), tmp_path)
    with pytest.raises(DataError, match="conversations"):
        generate(SynthConfig(conversations=3), tmp_path)
