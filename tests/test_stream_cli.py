"""rt-run stream: a JSONL file (or stdin) of turns in, one JSON prediction per turn out."""

import json
import os
import selectors
import subprocess
import sys

import numpy as np
import pytest

from anymodal.runtime import Runtime
from anymodal_testing.helpers import DIMS

BIN = os.path.dirname(sys.executable)
RT_RUN = os.path.join(BIN, "rt-run")


def rt_run(*args, cwd=None):
    return subprocess.run([RT_RUN, *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture()
def turns_dir(tmp_path):
    """A turns file with inline lists, .npy refs in a subfolder, an absent camera and a dead one."""
    rng = np.random.default_rng(0)
    feats = [{m: rng.standard_normal(d).astype(np.float32) for m, d in zip("atv", DIMS)} for _ in range(4)]
    (tmp_path / "feats").mkdir()
    np.save(tmp_path / "feats" / "t1.npy", feats[1]["t"])
    np.save(tmp_path / "feats" / "v3.npy", feats[3]["v"][None])  # [1, dim] is one utterance too
    lines = [
        {"id": "u0", "audio": feats[0]["a"].tolist(), "text": feats[0]["t"].tolist(),
         "visual": feats[0]["v"].tolist()},
        {"audio": feats[1]["a"].tolist(), "text": "feats/t1.npy", "visual": None},
        {"id": 7, "audio": feats[2]["a"].tolist(), "text": [0.0] * DIMS[1], "visual": feats[2]["v"].tolist(),
         "present": ["audio", "visual"]},  # text field written, but the sensor did not report
        {"visual": "feats/v3.npy"},
    ]
    (tmp_path / "turns.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    expected = [dict(zip(("audio", "text", "visual"), (f["a"], f["t"], f["v"]))) for f in feats]
    expected[1]["visual"] = None
    expected[2]["text"] = None
    expected[3] = {"visual": feats[3]["v"]}
    return tmp_path, expected


def test_stream_prints_one_prediction_per_turn_as_a_conversation(small_bundle, turns_dir):
    folder, expected = turns_dir
    res = rt_run("stream", "--bundle", str(small_bundle), str(folder / "turns.jsonl"), "--max-context", "3",
                 cwd="/")  # references resolve against the file's folder, not the current one
    assert res.returncode == 0, res.stderr
    got = [json.loads(line) for line in res.stdout.splitlines()]
    conv = Runtime(small_bundle).conversation(max_context=3)
    want = [conv.add(**kw).to_dict() for kw in expected]
    assert [g["line"] for g in got] == [1, 2, 3, 4] and [g["id"] for g in got] == ["u0", None, 7, None]
    assert [g["pattern"] for g in got] == ["atv", "at", "av", "v"]
    assert [g["position"] for g in got] == [0, 1, 2, 1]  # max_context 3: the 4th turn evicted the oldest
    for g, w in zip(got, want):
        assert {k: v for k, v in g.items() if k not in ("line", "id")}.keys() == w.keys()
        assert g["outputs"]["label"] == w["outputs"]["label"]
        np.testing.assert_allclose(g["outputs"]["probs"], w["outputs"]["probs"], atol=1e-6)


def test_a_bad_line_stops_with_its_number_after_the_good_ones(small_bundle, tmp_path):
    lines = [{"audio": [0.1] * DIMS[0]}, {"audio": [0.1] * DIMS[0], "txt": [1]}, {"audio": [0.2] * DIMS[0]}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = rt_run("stream", "--bundle", str(small_bundle), str(tmp_path / "t.jsonl"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "error: TurnError: line 2: unknown key 'txt'" in res.stderr
    assert [json.loads(x)["line"] for x in res.stdout.splitlines()] == [1]
    # a turn the conversation itself refuses (here: a wrong dim) names its line too
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": [0.0] * 3}) + "\n")
    res = rt_run("stream", "--bundle", str(small_bundle), str(tmp_path / "d.jsonl"))
    assert res.returncode == 2 and "line 1: text: 3 numbers, the model expects 10" in res.stderr


def test_keep_going_answers_bad_lines_and_fails_at_the_end(small_bundle, tmp_path):
    lines = ['{"audio": %s}' % json.dumps([0.1] * DIMS[0]), "{oops", '{"audio": null}',
             '{"audio": %s, "id": "last"}' % json.dumps([0.3] * DIMS[0])]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    res = rt_run("stream", "--bundle", str(small_bundle), str(tmp_path / "t.jsonl"), "--keep-going")
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert [g["line"] for g in got] == [1, 2, 3, 4]
    assert "not valid JSON" in got[1]["error"] and "no sensor reported" in got[2]["error"]
    assert got[3]["id"] == "last" and got[3]["turn"] == 1  # the refused lines are not turns
    assert res.returncode == 2 and "2 of 4 turns refused (lines 2, 3)" in res.stderr


def test_option_mistakes_are_typed(small_bundle, tmp_path):
    res = rt_run("stream", "--bundle", str(small_bundle), str(tmp_path / "none.jsonl"))
    assert res.returncode == 2 and "RequestError: turns file not found" in res.stderr
    # the features come from the turns file; the conversation's options belong to `stream`
    np.save(tmp_path / "a.npy", np.zeros((2, DIMS[0]), np.float32))
    res = rt_run("stream", "--bundle", str(small_bundle), "-", "--audio", str(tmp_path / "a.npy"))
    assert res.returncode == 2 and "No such option: --audio" in res.stderr
    res = rt_run("--bundle", str(small_bundle), "--audio", str(tmp_path / "a.npy"), "--max-context", "8")
    assert res.returncode == 2 and "No such option: --max-context" in res.stderr
    res = rt_run("--bundle", str(small_bundle), "stream", "-")
    assert res.returncode == 2 and "InputError: --bundle is an option of `rt-run` itself" in res.stderr


def test_stdin_is_answered_turn_by_turn(small_bundle, tmp_path):
    """Each prediction comes back before the next turn is sent (a live source, not a batch)."""
    proc = subprocess.Popen([RT_RUN, "stream", "--bundle", str(small_bundle), "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        for t in range(3):
            proc.stdin.write(json.dumps({"audio": [0.1 * t] * DIMS[0], "id": t}) + "\n")
            proc.stdin.flush()
            assert sel.select(timeout=60), f"no answer to turn {t} while stdin stays open"
            got = json.loads(proc.stdout.readline())
            assert got["id"] == t and got["turn"] == t and got["pattern"] == "a"
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
