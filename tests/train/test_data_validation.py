"""Bad training data is a DataError naming file, conversation/sample id and field
(docs/ARCHITECTURE.md §5): non-finite features, labels out of range or NaN, empty splits, ragged
conversations, inconsistent lengths, missing keys — for the GCNet and MMSA readers."""

import pickle

import numpy as np
import pytest

from anymodal.runtime.errors import DataError
from anymodal.train.data.gcnet import read_gcnet
from anymodal.train.data.mmsa import read_mmsa
from anymodal.train.data.safe_pickle import safe_load_pickle
from anymodal_testing.format_samples import (
    SAMPLE_FEATURES,
    numpy1_pickle,
    write_iemocap_sample,
    write_mmsa_sample,
    write_mosi_sample,
)

MOSI_PKL = "CMUMOSI_features_raw_2way.pkl"
IEMO_PKL = "IEMOCAP_features_raw_4way.pkl"
AUDIO, TEXT, VISUAL = SAMPLE_FEATURES


def feature(root, name, utt):
    return root / "features" / name / f"{utt}.npy"


def payload(edit):
    """An edit of the label pickle's list [ids, labels, speakers, sentences, splits...]."""
    def apply(root, pkl):
        data = safe_load_pickle(root / pkl)
        edit(data)
        numpy1_pickle(data, root / pkl)
    return apply


def save(name, utt, array):
    def apply(root, pkl):
        np.save(feature(root, name, utt), array)
    return apply


def set_label(vid, i, value):
    def edit(data):
        data[1][vid][i] = value
    return payload(edit)


def replace_file(name, utt, raw: bytes):
    def apply(root, pkl):
        feature(root, name, utt).write_bytes(raw)
    return apply


def delete_file(name, utt):
    def apply(root, pkl):
        feature(root, name, utt).unlink()
    return apply


nan_vec = np.array([0.1, np.nan, 0.3, 0.4, 0.5], np.float32)

# case -> (mutation, substrings the message must hold); MOSI sample: videos vidA..vidE (3,4,2,3,5 utts)
MOSI_CASES = {
    "audio feature NaN": (save(AUDIO, "vidB_2", nan_vec), ["vidB_2", "'vidB'", "'audio'", "NaN or Inf"]),
    "text feature +Inf": (save(TEXT, "vidC_1", np.full(10, np.inf)), ["vidC_1", "'text'", "NaN or Inf"]),
    "visual frame -Inf": (save(VISUAL, "vidA_2", np.vstack([np.zeros((2, 8)), -np.inf * np.ones((1, 8))])),
                          ["vidA_2", "'visual'", "frame 2"]),
    "feature overflows float32": (save(AUDIO, "vidA_1", np.full(5, 1e300)), ["vidA_1", "overflows float32"]),
    "label NaN": (set_label("vidB", 1, np.nan), [MOSI_PKL, "'vidB'", "'labels'", "utterance 1", "nan"]),
    "label +Inf": (set_label("vidD", 0, np.inf), ["'vidD'", "'labels'", "inf"]),
    "label above 3": (set_label("vidA", 2, 3.5), ["'vidA'", "'labels'", "3.5", "[-3, 3]"]),
    "label below -3": (set_label("vidE", 4, -4.0), ["'vidE'", "utterance 4", "-4"]),
    "label a string": (set_label("vidA", 0, "positive"), ["'vidA'", "'labels'", "numbers"]),
    "label a list": (set_label("vidA", 0, [1.0, 2.0]), ["'vidA'", "'labels'"]),
    "fewer labels than utterances": (payload(lambda d: d[1]["vidB"].pop()),
                                     ["'vidB'", "4 utterances, 3 labels"]),
    "more labels than utterances": (payload(lambda d: d[1]["vidC"].append(0.0)),
                                    ["'vidC'", "2 utterances, 3 labels"]),
    "speakers ragged": (payload(lambda d: d[2]["vidD"].pop()), ["'vidD'", "2 speakers"]),
    "conversation without utterances": (payload(lambda d: d[0].__setitem__("vidC", [])),
                                        ["'vidC'", "'ids'", "no utterances"]),
    "empty train split": (payload(lambda d: d.__setitem__(4, set())), [MOSI_PKL, "train split is empty"]),
    "empty val split": (payload(lambda d: d.__setitem__(5, set())), ["val split is empty"]),
    "empty test split": (payload(lambda d: d.__setitem__(6, [])), ["test split is empty"]),
    "split names an unknown video": (payload(lambda d: d[6].add("vidZ")), ["test split", "vidZ"]),
    "labels missing for a video": (payload(lambda d: d[1].pop("vidE")), ["'vidE'", "'labels'", "missing"]),
    "payload too short": (payload(lambda d: d.pop()), [MOSI_PKL, "expected a list of 7"]),
    "ids not a dict": (payload(lambda d: d.__setitem__(0, ["vidA"])), ["item 0", "expected a dict"]),
    "labels not a dict": (payload(lambda d: d.__setitem__(1, None)), ["item 1", "expected a dict"]),
    "utterance ids a string": (payload(lambda d: d[0].__setitem__("vidA", "vidA_1")),
                               ["'vidA'", "'ids'", "expected a list"]),
    "feature file missing": (delete_file(TEXT, "vidE_5"), ["'vidE'", "vidE_5", "missing feature file"]),
    "feature file not npy": (replace_file(AUDIO, "vidB_1", b"not numpy"), ["vidB_1", "not a readable .npy"]),
    "feature empty": (save(AUDIO, "vidB_3", np.zeros(0, np.float32)), ["vidB_3", "non-empty"]),
    "feature [0, dim]": (save(VISUAL, "vidB_3", np.zeros((0, 8), np.float32)), ["vidB_3", "non-empty"]),
    "feature 3-D": (save(AUDIO, "vidD_2", np.zeros((2, 2, 5), np.float32)), ["vidD_2", "shape (2, 2, 5)"]),
    "feature of strings": (save(TEXT, "vidD_3", np.array(["a", "b"])), ["vidD_3", "numeric"]),
    "feature dim differs": (save(AUDIO, "vidE_2", np.zeros(7, np.float32)), ["vidE_2", "dim 7"]),
}

IEMO_CASES = {
    "emotion label beyond the classes": (set_label("Ses01F_impro01", 0, 4), ["'Ses01F_impro01'", "0..3"]),
    "emotion label negative": (set_label("Ses02M_impro02", 3, -1), ["'Ses02M_impro02'", "utterance 3"]),
    "emotion label fractional": (set_label("Ses03F_impro03", 1, 1.5), ["'Ses03F_impro03'", "1.5"]),
    "emotion label NaN": (set_label("Ses01M_impro01", 2, float("nan")), ["'Ses01M_impro01'", "nan"]),
    "speaker missing for a face folder": (payload(lambda d: d[2].__setitem__("Ses01F_impro01", [""] * 5)),
                                          ["'Ses01F_impro01'", "'visual'", "speaker", "'speakers'"]),
    "face file NaN": (
        lambda root, pkl: np.save(root / "features" / VISUAL / "Ses02F_impro02_F000" / "compress_F.npy",
                                  np.full(8, np.nan, np.float32)),
        ["'Ses02F_impro02'", "Ses02F_impro02_F000", "NaN or Inf"]),
    "face folder empty": (
        lambda root, pkl: [p.unlink() for p in (root / "features" / VISUAL / "Ses04M_impro04_M001").iterdir()],
        ["Ses04M_impro04_M001", "no .npy files"]),
}


@pytest.mark.parametrize("case", list(MOSI_CASES))
def test_bad_gcnet_mosi_data_is_a_data_error(tmp_path, case):
    mutate, expected = MOSI_CASES[case]
    root = write_mosi_sample(tmp_path)
    read_gcnet(root, "mosi", SAMPLE_FEATURES)  # the sample itself is fine
    mutate(root, MOSI_PKL)
    with pytest.raises(DataError) as err:
        read_gcnet(root, "mosi", SAMPLE_FEATURES)
    for part in expected:
        assert part in str(err.value), (part, str(err.value))


@pytest.mark.parametrize("case", list(IEMO_CASES))
def test_bad_gcnet_iemocap_data_is_a_data_error(tmp_path, case):
    mutate, expected = IEMO_CASES[case]
    root = write_iemocap_sample(tmp_path)
    mutate(root, IEMO_PKL)
    with pytest.raises(DataError) as err:
        read_gcnet(root, "iemocap4", SAMPLE_FEATURES)
    for part in expected:
        assert part in str(err.value), (part, str(err.value))


def field(split, key, fn):
    def edit(data):
        data[split][key] = fn(data[split][key])
    return edit


def poke(split, key, index, value):
    def edit(data):
        arr = np.array(data[split][key], dtype=np.float32 if key.endswith("lengths") else None)
        arr[index] = value
        data[split][key] = arr
    return edit


def drop(split, key):
    def edit(data):
        del data[split][key]
    return edit


# MMSA sample: train 5, valid 3, test 3 samples with ids vid<i>$_$<i>; audio [N,30,5] text [N,12,16] vision [N,40,7]
MMSA_CASES = {
    "audio NaN": (poke("train", "audio", (2, 3, 1), np.nan), ["[train].audio", "'vid2$_$2'", "token 3"]),
    "audio +inf": (poke("valid", "audio", (1, 0, 0), np.inf), ["[valid].audio", "'vid1$_$1'", "inf"]),
    "vision -inf (only audio's -inf is MMSA's padding)": (poke("test", "vision", (0, 5, 2), -np.inf),
                                                          ["[test].vision", "'vid0$_$0'", "-inf"]),
    "text NaN": (poke("train", "text", (4, 0, 0), np.nan), ["[train].text", "'vid4$_$4'"]),
    "label NaN": (poke("train", "regression_labels", 1, np.nan), ["regression_labels", "'vid1$_$1'", "nan"]),
    "label above 3": (poke("valid", "regression_labels", 2, 3.2), ["[valid].regression_labels", "'vid2$_$2'"]),
    "label -inf": (poke("test", "regression_labels", 0, -np.inf), ["regression_labels", "'vid0$_$0'"]),
    "labels as strings": (field("train", "regression_labels", lambda x: np.array(["pos"] * len(x))),
                          ["[train].regression_labels", "expected numbers"]),
    "labels [N, 2]": (field("train", "regression_labels", lambda x: np.stack([x, x], 1)),
                      ["regression_labels", "[N] or [N, 1]"]),
    "empty split": (lambda d: d.__setitem__("valid", {k: np.asarray(v)[:0] for k, v in d["valid"].items()}),
                    ["[valid]", "the split is empty"]),
    "audio lengths count": (field("train", "audio_lengths", lambda x: x[:-1]), ["[train].audio_lengths",
                                                                                "expected 5 numbers"]),
    "audio length beyond T": (poke("train", "audio_lengths", 0, 31), ["audio_lengths", "'vid0$_$0'", "0..30"]),
    "vision length negative": (poke("test", "vision_lengths", 2, -1), ["vision_lengths", "'vid2$_$2'"]),
    "audio length NaN": (poke("valid", "audio_lengths", 1, np.nan), ["audio_lengths", "'vid1$_$1'"]),
    "audio length fractional": (poke("valid", "audio_lengths", 0, 2.5), ["audio_lengths", "2.5"]),
    "vision has a sample fewer": (field("train", "vision", lambda x: x[:-1]), ["[train].vision", "[5, T, dim]"]),
    "ids count differs": (field("train", "id", lambda x: x[:-2]), ["[train].id", "expected 5 ids"]),
    "id missing": (drop("valid", "id"), ["[valid]", "missing field 'id'"]),
    "audio missing": (drop("train", "audio"), ["[train]", "missing field 'audio'"]),
    "labels missing": (drop("test", "regression_labels"), ["[test]", "missing field 'regression_labels'"]),
    "audio lengths missing": (drop("train", "audio_lengths"), ["missing field 'audio_lengths'"]),
    "split not a dict": (lambda d: d.__setitem__("train", [1, 2, 3]), ["[train]", "expected a dict"]),
    "split missing": (lambda d: d.pop("test"), ["expected a dict with train, valid, test"]),
    "text_bert wrong shape": (field("train", "text_bert", lambda x: x[:, :2]), ["[train].text_bert"]),
    "ragged audio (list of sequences)": (
        field("train", "audio", lambda x: [x[0], x[1][:10]] + list(x[2:])), ["[train].audio", "rectangular"]),
    "integer features": (field("train", "vision", lambda x: x.astype(np.int64)), ["[train].vision", "int64"]),
}


@pytest.mark.parametrize("case", list(MMSA_CASES))
def test_bad_mmsa_data_is_a_data_error(tmp_path, case):
    edit, expected = MMSA_CASES[case]
    path = write_mmsa_sample(tmp_path / "unaligned_50.pkl")
    read_mmsa(path)  # the sample itself is fine
    data = pickle.loads(path.read_bytes())
    edit(data)
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError) as err:
        read_mmsa(path)
    assert str(path) in str(err.value), str(err.value)
    for part in expected:
        assert part in str(err.value), (part, str(err.value))
