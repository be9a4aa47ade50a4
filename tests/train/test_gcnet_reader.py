import pickle

import numpy as np
import pytest

from anymodal.runtime.errors import DataError
from anymodal.train.data.gcnet import read_gcnet
from anymodal.train.data.safe_pickle import safe_load_pickle
from anymodal_testing.format_samples import SAMPLE_FEATURES, write_iemocap_sample, write_mosi_sample


def test_mosi_sample_with_distribution_quirks(tmp_path):
    root = write_mosi_sample(tmp_path)
    assert b"numpy.core.multiarray" in (root / "CMUMOSI_features_raw_2way.pkl").read_bytes()
    ds = read_gcnet(root, "mosi", SAMPLE_FEATURES)
    assert ds.dims == {"a": 5, "t": 10, "v": 8}
    assert ds.splits == {"train": ["vidA", "vidB", "vidC"], "val": ["vidD"], "test": ["vidE"]}
    conv = ds.conversations["vidB"]
    assert conv.labels.dtype == np.float32 and conv.labels[0] == 0.0
    assert all(f.dtype == np.float32 for f in conv.features.values())
    # [T, dim] arrays are averaged over T
    raw = np.load(root / "features" / SAMPLE_FEATURES[2] / "vidB_3.npy")
    np.testing.assert_allclose(conv.features["v"][2], raw.mean(0), rtol=1e-6)


def test_iemocap_face_folder_uses_the_utterances_own_speaker(tmp_path):
    root = write_iemocap_sample(tmp_path)
    ds = read_gcnet(root, "iemocap4", SAMPLE_FEATURES)
    conv = ds.conversations["Ses01F_impro01"]
    # compress_F holds +1, compress_M -1: F utterances must read +1, M utterances -1
    expected = np.array([1 if s == "F" else -1 for s in conv.speakers], np.float32)
    np.testing.assert_array_equal(conv.features["v"][:, 0], expected)
    assert conv.labels.dtype == np.int64
    assert set(ds.splits["test"]) == {"Ses05F_impro05", "Ses05M_impro05"}


def test_shared_format_samples_read(shared_dir):
    base = shared_dir / "fixtures" / "format-samples" / "gcnet"
    mosi = read_gcnet(base / "CMUMOSI", "mosi", SAMPLE_FEATURES)
    iemo = read_gcnet(base / "IEMOCAPFour", "iemocap4", SAMPLE_FEATURES)
    assert len(mosi.conversations) == 6 and len(iemo.conversations) > 0
    assert set(mosi.dims) == {"a", "t", "v"}


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_malicious_pickle_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "CMUMOSI_features_raw_2way.pkl"
    path.write_bytes(pickle.dumps([_Evil()]))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        safe_load_pickle(path)


def test_missing_feature_file_names_the_file(tmp_path):
    root = write_mosi_sample(tmp_path)
    (root / "features" / SAMPLE_FEATURES[1] / "vidC_2.npy").unlink()
    with pytest.raises(DataError, match="vidC_2"):
        read_gcnet(root, "mosi", SAMPLE_FEATURES)


def test_dimension_mismatch_names_utterance_and_dims(tmp_path):
    root = write_mosi_sample(tmp_path)
    np.save(root / "features" / SAMPLE_FEATURES[0] / "vidD_1.npy", np.zeros(7, np.float32))
    with pytest.raises(DataError, match=r"vidD_1.*dim 7.*has 5"):
        read_gcnet(root, "mosi", SAMPLE_FEATURES)


def test_unknown_dataset_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'iemocap9'.*iemocap4"):
        read_gcnet(tmp_path, "iemocap9", SAMPLE_FEATURES)
    root = write_mosi_sample(tmp_path)
    with pytest.raises(DataError, match="feature folder not found.*nope"):
        read_gcnet(root, "mosi", ("nope", SAMPLE_FEATURES[1], SAMPLE_FEATURES[2]))


def test_nan_feature_is_refused(tmp_path):
    root = write_mosi_sample(tmp_path)
    np.save(root / "features" / SAMPLE_FEATURES[1] / "vidA_1.npy", np.full(10, np.nan, np.float32))
    with pytest.raises(DataError, match="vidA_1.*NaN"):
        read_gcnet(root, "mosi", SAMPLE_FEATURES)
