"""Conversations: one utterance per turn, sensors dropping in and out (runtime/conversation.py).

Every per-turn prediction must equal the full graph over the window it was made in: the
re-scoring fallback against Runtime.predict, streaming (causal bundles, step graphs + caches)
against the causal full graph, eviction included."""

import json
import threading

import numpy as np
import pytest

from anymodal.runtime import Runtime
from anymodal.runtime.errors import ConversationError, RequestError
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES
from anymodal_testing.helpers import DIMS, make_model, run_config

TOL = 1e-4


def _availability(rng, turns: int, patterns=ALL_PATTERNS) -> list[str]:
    return [patterns[k] for k in rng.integers(0, len(patterns), turns)]


def _utterances(rng, turns: int) -> dict[str, np.ndarray]:
    return {m: rng.standard_normal((turns, d)).astype(np.float32) for m, d in zip(MODALITIES, DIMS)}


def _turn(feats, t: int, pattern: str) -> dict:
    return {MODALITY_NAMES[m]: feats[m][t] for m in pattern}


def _window_reference(rt, feats, pats, start: int, end: int):
    """Runtime.predict over utterances [start, end) with their availability: last row's outputs."""
    present = {m: np.array([m in p for p in pats[start:end]]) for m in MODALITIES}
    arrays = {MODALITY_NAMES[m]: feats[m][start:end] for m in MODALITIES if present[m].any()}
    pred = rt.predict(**arrays, present={m: v for m, v in present.items() if v.any()})
    return pred.probs[-1], {m: w[-1] for m, w in pred.router_weights.items() if m in pats[end - 1]}


def _check_against_windows(rt, conv, feats, pats, starts):
    for t, pattern in enumerate(pats):
        p = conv.add(**_turn(feats, t, pattern))
        probs, weights = _window_reference(rt, feats, pats, starts[t], t + 1)
        assert p.pattern == pattern and p.turn == t and p.position == t - starts[t]
        assert np.abs(p.probs - probs).max() <= TOL, (t, pattern)
        assert set(p.router_weights) == set(pattern)
        for m in pattern:
            assert np.abs(p.router_weights[m] - weights[m]).max() <= TOL, (t, m)
        assert p.label == ["happy", "sad", "neutral", "angry"][int(np.argmax(p.probs))]


def _window_starts(turns: int, max_context: int) -> list[int]:
    """Where the window began at each turn under the eviction rule (keep the newest C // 2)."""
    starts, start, length = [], 0, 0
    for t in range(turns):
        if length == max_context:
            keep = max_context // 2
            start, length = t - keep, keep
        length += 1
        starts.append(start)
    return starts


@pytest.fixture(scope="module")
def rt(small_bundle):
    with Runtime(small_bundle, backend="ort-cpu", threads=1) as r:
        yield r


@pytest.fixture(scope="module", params=["paper", "authors"])
def causal_rt(request, causal_bundle, tmp_path_factory):
    """Streaming runtimes: the session's causal bundle (paper preset) and an authors-preset one."""
    bundle = causal_bundle
    if request.param == "authors":
        from anymodal.export.bundle import write_bundle

        model = make_model(depth=2, causal=True, preset="authors", seed=5)
        bundle = write_bundle(model, run_config(), tmp_path_factory.mktemp("causal-authors") / "bundle")
    with Runtime(bundle, backend="ort-cpu", threads=1) as r:
        yield r


def _every_pattern(rng, turns: int) -> list[str]:
    """A random availability sequence in which each of the 7 patterns occurs."""
    pats = list(ALL_PATTERNS) + _availability(rng, turns - len(ALL_PATTERNS))
    rng.shuffle(pats)
    return pats


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_stream_equals_the_causal_full_graph(causal_rt):
    rng = np.random.default_rng(10)
    for _ in range(2):  # two random availability sequences, every pattern in each
        conv = causal_rt.conversation(max_context=64)
        assert conv.mode == "stream"
        pats, feats = _every_pattern(rng, 16), _utterances(rng, 16)
        _check_against_windows(causal_rt, conv, feats, pats, [0] * 16)
    steps = [g for g in causal_rt.backend.loaded() if g.startswith("step_")]
    assert sorted(steps) == sorted(f"step_{p}" for p in ALL_PATTERNS)  # pattern switches: no reload


def test_stream_eviction_equals_the_window(causal_rt):
    rng = np.random.default_rng(11)
    for C in (1, 2, 5):
        conv = causal_rt.conversation(max_context=C)
        pats, feats = _every_pattern(rng, 15), _utterances(rng, 15)
        _check_against_windows(causal_rt, conv, feats, pats, _window_starts(15, C))


def test_stream_memory_is_bounded_and_stated(causal_rt):
    """Bytes per utterance of context: the raw features (re-scoring/rebuilds), availability and
    the K/V rows of the three streams: 3 · Q · 2 · 3 experts · d floats."""
    cfg = causal_rt.bundle.model["config"]
    Q, d = cfg["depth"], cfg["hidden"]
    C = 6
    conv = causal_rt.conversation(max_context=C)
    per_utterance = 4 * sum(DIMS) + 3 + 3 * Q * 2 * 3 * d * 4
    assert conv.memory_bytes == C * per_utterance
    rng = np.random.default_rng(12)
    pats, feats = _availability(rng, 3 * C), _utterances(rng, 3 * C)
    for t, pattern in enumerate(pats):
        conv.add(**_turn(feats, t, pattern))
        assert conv.length <= C and conv.memory_bytes == C * per_utterance


def test_stream_conversations_from_threads(causal_rt):
    _many_conversations(causal_rt)


# int8 step graphs (fp32 ones quantised: int8 weights, per-call activation scales) against the
# fp32 step graphs, per turn, on probabilities (docs/streaming.md states it). Not against the
# int8 full graph: its activation scales are the whole window's, a step's are the utterance's.
INT8_TOL = 0.05


@pytest.fixture(scope="module")
def causal_int8_bundle(causal_model, tmp_path_factory):
    from anymodal.export.bundle import write_bundle

    return write_bundle(causal_model, run_config(), tmp_path_factory.mktemp("causal-int8") / "bundle",
                        precisions=("fp32", "int8"))


@pytest.mark.slow  # exports a bundle: > 2 s on 2 cores
def test_int8_step_graphs_stream_close_to_fp32(causal_int8_bundle):
    manifest = json.loads((causal_int8_bundle / "manifest.json").read_text())
    steps = [f"step_{p}" for p in ALL_PATTERNS]
    assert set(steps) <= set(manifest["variants"]["int8"]["step_graphs"])
    assert all(manifest["parity"]["int8"][s]["max_error"] <= 0.25 for s in steps)  # verified at export
    rng = np.random.default_rng(13)
    pats, feats = _every_pattern(rng, 20), _utterances(rng, 20)
    with Runtime(causal_int8_bundle, backend="ort-cpu", threads=1, precision="int8") as q, \
            Runtime(causal_int8_bundle, backend="ort-cpu", threads=1, precision="fp32") as f:
        cq, cf = q.conversation(max_context=8), f.conversation(max_context=8)  # evictions included
        assert cq.mode == "stream"
        diffs = [np.abs(cq.add(**_turn(feats, t, p)).probs - cf.add(**_turn(feats, t, p)).probs).max()
                 for t, p in enumerate(pats)]
    assert 0 < max(diffs) <= INT8_TOL, diffs  # > 0: the int8 graphs really ran


def test_rescore_equals_predict_over_the_window(rt):
    rng = np.random.default_rng(0)
    conv = rt.conversation(max_context=64)
    assert conv.mode == "rescore" and "bidirectional" in conv.mode_reason
    pats = _availability(rng, 12)
    feats = _utterances(rng, 12)
    _check_against_windows(rt, conv, feats, pats, [0] * 12)
    assert conv.length == conv.turns == 12


def test_rescore_eviction_keeps_the_newest_half(rt):
    rng = np.random.default_rng(1)
    conv = rt.conversation(max_context=5)
    pats, feats = _availability(rng, 14), _utterances(rng, 14)
    _check_against_windows(rt, conv, feats, pats, _window_starts(14, 5))
    assert conv.length <= 5 and conv.turns == 14


def test_memory_is_bounded_by_max_context(rt):
    rng = np.random.default_rng(2)
    conv = rt.conversation(max_context=4)
    before = conv.memory_bytes
    assert before >= 4 * sum(DIMS) * 4  # the window's raw features, preallocated
    pats, feats = _availability(rng, 12), _utterances(rng, 12)
    for t, pattern in enumerate(pats):
        conv.add(**_turn(feats, t, pattern))
        assert conv.length <= 4 and conv.memory_bytes == before
    assert conv.turns == 12
    conv.reset()
    assert conv.length == conv.turns == 0 and conv.memory_bytes == before


def test_turn_checks_reuse_the_request_validation(rt):
    conv = rt.conversation(max_context=8)
    a = np.zeros(DIMS[0], np.float32)
    with pytest.raises(RequestError, match="every modality is absent"):
        conv.add()
    with pytest.raises(RequestError, match="feature dim 5, the model expects 6"):
        conv.add(audio=np.zeros(5, np.float32))
    with pytest.raises(RequestError, match="NaN or Inf"):
        conv.add(audio=np.full(DIMS[0], np.nan, np.float32))
    with pytest.raises(RequestError, match=r"one utterance per add\(\)"):
        conv.add(audio=np.zeros((2, DIMS[0]), np.float32))
    assert conv.turns == 0  # refused turns leave no trace
    p = conv.add(audio=a[None], visual=np.full(DIMS[2], np.nan, np.float32), nonfinite="absent")
    assert p.pattern == "a" and p.present == {"a": True, "t": False, "v": False}
    assert set(p.to_dict()) >= {"mode", "pattern", "outputs", "router_weights", "turn", "position"}
    with pytest.raises(RequestError, match="max_context"):
        rt.conversation(max_context=0)


def test_derl_refuses_conversations(derl_bundle):
    """DERL scores one sample at a time (the session's DERL bundle, shared with other tests)."""
    with Runtime(derl_bundle, backend="ort-cpu") as r, pytest.raises(ConversationError, match="derl model cannot"):
        r.conversation()


def test_many_conversations_share_one_runtime(rt):
    _many_conversations(rt)


def _many_conversations(rt):
    rng = np.random.default_rng(3)
    n, turns = 4, 6
    data = [(_availability(rng, turns), _utterances(rng, turns)) for _ in range(n)]
    got = [None] * n

    def follow(k):
        conv = rt.conversation(max_context=16)
        pats, feats = data[k]
        got[k] = [conv.add(**_turn(feats, t, p)).probs for t, p in enumerate(pats)]

    threads = [threading.Thread(target=follow, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k, (pats, feats) in enumerate(data):  # the same as one conversation at a time
        conv = rt.conversation(max_context=16)
        for t, p in enumerate(pats):
            assert np.abs(conv.add(**_turn(feats, t, p)).probs - got[k][t]).max() <= TOL


@pytest.mark.slow
def test_rt_train_causal_exports_a_streaming_bundle(tmp_path):
    """rt-train momke --causal (both stages causal) -> rt-export -> a Conversation that streams
    (the commands in-process: no torch import per step)."""
    import json

    from anymodal_testing.console import run_console

    def run(cmd, *args):
        res = run_console(cmd, *args)
        assert res.returncode == 0, res.stderr
        return res

    run("rt-data", "synth", "--out", str(tmp_path / "d"), "--conversations", "20")
    run("rt-train", "momke", "--data", str(tmp_path / "d"), "--dataset", "iemocap4", "--out", str(tmp_path / "run"),
        "--hidden", "16", "--depth", "1", "--epochs-stage1", "1", "--epochs-stage2", "1", "--no-progress", "--causal")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["config"]["causal"] is True
    run("rt-export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "b"))
    with Runtime(tmp_path / "b", backend="ort-cpu") as r:
        conv = r.conversation(max_context=8)
        assert conv.mode == "stream"
        dims = r.bundle.dims
        p = conv.add(audio=np.ones(dims["a"], np.float32), text=np.ones(dims["t"], np.float32))
        assert p.graph == "step_at" and p.label in r.bundle.labels
