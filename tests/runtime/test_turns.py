"""The JSONL turns format of `rt-run stream` (runtime/turns.py)."""

import json
import os

import numpy as np
import pytest

from anymodal.runtime.errors import InputError
from anymodal.runtime.turns import Turn, TurnError, parse_turn

DIMS = {"a": 3, "t": 4, "v": 2}


def turn(obj, base, line=1):
    return parse_turn(obj if isinstance(obj, str) else json.dumps(obj), line, base, DIMS)


def test_inline_lists_refs_and_absent_sensors(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(4, dtype=np.float64))
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "v.npy", np.ones((1, 2), np.float16))
    t = turn({"audio": [1, 2.5, -3], "text": "t.npy", "visual": "sub/v.npy", "id": "u1"}, tmp_path)
    assert isinstance(t, Turn) and t.pattern == "atv" and t.id == "u1" and t.line == 1
    np.testing.assert_array_equal(t.features["a"], [1, 2.5, -3])
    np.testing.assert_array_equal(t.features["t"], [0, 1, 2, 3])
    assert all(x.dtype == np.float32 and x.ndim == 1 for x in t.features.values())
    t = turn({"text": [0, 0, 0, 0], "visual": None}, tmp_path)  # null and missing = did not report
    assert t.pattern == "t" and t.arrays()["audio"] is None and t.arrays()["visual"] is None
    assert t.arrays()["text"].shape == (4,) and t.id is None


def test_present_selects_the_sensors_that_reported(tmp_path):
    # a recorder that writes every field marks the dead camera in `present`: its features are not read
    t = turn({"audio": [0, 0, 0], "text": [1, 1, 1, 1], "visual": "no-such-file.npy", "present": ["text"]},
             tmp_path)
    assert t.pattern == "t"
    with pytest.raises(TurnError, match="line 1: present names 'visual' but the turn has no visual features"):
        turn({"audio": [0, 0, 0], "present": ["audio", "visual"]}, tmp_path)
    with pytest.raises(TurnError, match="present: unknown sensor 'camera'"):
        turn({"audio": [0, 0, 0], "present": ["camera"]}, tmp_path)
    with pytest.raises(TurnError, match="present: expected a list of sensor names"):
        turn({"audio": [0, 0, 0], "present": "audio"}, tmp_path)
    with pytest.raises(TurnError, match="no sensor reported this turn"):
        turn({"audio": [0, 0, 0], "present": []}, tmp_path)


@pytest.mark.parametrize("obj, message", [
    ("{\"audio\": [1, 2", "not valid JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    ("{\"audio\": [1, NaN, 2]}", "NaN is not a number JSON allows"),
    ("{\"audio\": [1, Infinity, 2]}", "Infinity is not a number JSON allows"),
    ({}, "no sensor reported this turn"),
    ({"audio": None, "text": None}, "no sensor reported this turn"),
    ({"audio": [1, 2, 3], "camera": [1]}, "unknown key 'camera'"),
    ({"audio": [1, 2]}, "audio: 2 numbers, the model expects 3"),
    ({"audio": [1, True, 3]}, r"audio\[1\] is true, expected a number"),
    ({"audio": [1, [2], 3]}, r"audio\[1\] is \[2\], expected a number"),
    ({"audio": [1, "2", 3]}, r"audio\[1\] is \"2\", expected a number"),
    ({"audio": [1, 1e300, 3]}, "beyond float32's range at index 1"),
    ('{"audio": [1, 2, 1%s]}' % ("0" * 400), "beyond float32's range at index 2"),
    ({"audio": 3}, "audio: expected a list of 3 numbers, a .npy path or null, got int"),
    ({"audio": [1, 2, 3], "id": 1.5}, "id: expected a string or an integer"),
    ({"audio": "a.txt"}, "'a.txt' is not a .npy file reference"),
    ({"audio": "missing.npy"}, "feature file 'missing.npy' not found"),
])
def test_bad_lines_are_typed_errors_naming_the_line(tmp_path, obj, message):
    with pytest.raises(TurnError, match=message) as info:
        turn(obj, tmp_path, line=7)
    assert str(info.value).startswith("line 7: ") and info.value.line == 7
    assert isinstance(info.value, InputError)


def test_npy_refs_are_checked(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros(5, np.float32))
    np.save(tmp_path / "ints.npy", np.zeros(3, np.int64))
    np.save(tmp_path / "two.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "nan.npy", np.array([0, np.nan, 0], np.float32))
    np.save(tmp_path / "big.npy", np.array([0, 1e300, 0], np.float64))
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "dir.npy").mkdir()
    for ref, message in (("wide.npy", r"shape \(5,\); expected \(3,\) or \(1, 3\)"),
                         ("ints.npy", "dtype int64; expected float16, float32 or float64"),
                         ("two.npy", r"shape \(2, 3\)"), ("nan.npy", "holds NaN or Inf"),
                         ("big.npy", r"holds NaN or Inf \(as float32"),
                         ("obj.npy", "not a readable .npy array"), ("dir.npy", "is not a file")):
        with pytest.raises(TurnError, match=message):
            turn({"audio": ref}, tmp_path)


def test_refs_stay_inside_the_jsonl_folder(tmp_path):
    base = tmp_path / "turns"
    base.mkdir()
    np.save(tmp_path / "secret.npy", np.zeros(3, np.float32))
    with pytest.raises(TurnError, match="outside"):
        turn({"audio": "../secret.npy"}, base)
    with pytest.raises(TurnError, match="is absolute; give a path relative to"):
        turn({"audio": str(tmp_path / "secret.npy")}, base)
    os.symlink(tmp_path / "secret.npy", base / "link.npy")  # symlinks are followed, then checked
    with pytest.raises(TurnError, match="resolves to .*secret.npy, outside"):
        turn({"audio": "link.npy"}, base)
    np.save(base / "ok.npy", np.zeros(3, np.float32))
    os.symlink(base / "ok.npy", base / "inner.npy")  # a link that stays inside is fine
    assert turn({"audio": "inner.npy"}, base).pattern == "a"



def test_bytes_are_decoded_per_line(tmp_path):
    assert parse_turn(b'{"audio": [1, 2, 3], "id": "\xc3\xa9"}', 2, tmp_path, DIMS).id == "\u00e9"
    with pytest.raises(TurnError, match="line 3: not UTF-8"):
        parse_turn(b'{"audio": [1, 2, 3], "id": "\xff"}', 3, tmp_path, DIMS)


def test_nonfinite_npy_is_passed_on_only_when_allowed(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([0, np.nan, 0], np.float32))
    t = parse_turn('{"audio": "nan.npy", "text": [1, 2, 3, 4]}', 1, tmp_path, DIMS, allow_nonfinite=True)
    assert np.isnan(t.features["a"][1])  # Conversation.add(nonfinite="absent") decides what it means
