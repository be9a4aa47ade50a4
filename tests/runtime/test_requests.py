"""The one request pipeline: every refusal a RequestError (a ValueError) naming the argument;
nonfinite="absent"; non-finite outputs refused as ModelError; Prediction.to_dict()."""

import json

import numpy as np
import pytest

from anymodal import ModelError, RequestError, Runtime
from anymodal.runtime.prediction import TO_DICT_KEYS
from anymodal_testing.helpers import DIMS


def x(L=4, B=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (L,) if B is None else (B, L)
    return {n: rng.standard_normal(shape + (d,)).astype(np.float32)
            for n, d in zip(("audio", "text", "visual"), DIMS)}


@pytest.mark.parametrize("kwargs,match", [
    (dict(audio="a.npy"), r"audio: expected a numpy array, got str"),
    (dict(audio=np.zeros((4, 6), bool)), r"audio: dtype bool; expected float16, float32 or float64"),
    (dict(audio=np.zeros((4, 6), object)), r"audio: dtype object"),
    (dict(audio=np.zeros((0, 4, 6), np.float32)), r"audio: batch of 0 samples"),
    (dict(audio=np.zeros((2, 4, 6), np.float32), text=np.zeros((4, 10), np.float32)), r"mix batched"),
    (dict(audio=np.zeros((2, 4, 6), np.float32), text=np.zeros((3, 4, 10), np.float32)), r"batch size"),
    (dict(audio=np.zeros((2, 4, 6), np.float32), lengths=[4, 5]), r"lengths: expected lengths in 1..4"),
    (dict(audio=np.zeros((2, 4, 6), np.float32), lengths=[4]), r"lengths: expected shape \(2,\)"),
    (dict(audio=np.zeros((2, 4, 6), np.float32), lengths=[True, True]), r"lengths: expected integers"),
    (dict(audio=np.zeros((4, 6), np.float32), lengths={"a": 4}), r"lengths: expected \[B\] utterance counts"),
    (dict(audio=np.zeros((4, 6), np.float32), present={"audio": np.ones(4, int)}), r"present\[audio\]: expected a bool"),
    (dict(audio=np.zeros((4, 6), np.float32), present={"audio": np.ones(5, bool)}), r"present\[audio\]: shape \(5,\)"),
    (dict(audio=np.zeros((4, 6), np.float32), present={"smell": np.ones(4, bool)}), r"present: unknown modality"),
    (dict(audio=np.zeros((4, 6), np.float32), present=[True]), r"present: expected a dict"),
    (dict(audio=np.zeros((4, 6), np.float32), nonfinite="drop"), r"nonfinite: expected one of error, absent"),
    (dict(audio=np.zeros((3, 6), np.float32), text=np.zeros((3, 10), np.float32),
          present={"a": np.array([1, 0, 1], bool), "t": np.array([1, 0, 0], bool)}),
     r"utterance 1 of batch 0 has every modality absent"),
    (dict(audio=np.full((3, 6), 1e6)), None),  # float64 within float32's range: served
    (dict(audio=np.full((3, 6), 1e300)), r"audio: NaN or Inf \(after conversion to float32\) at batch 0, utterance 0"),
])
def test_refusals_name_the_argument(small_bundle, kwargs, match):
    rt = Runtime(small_bundle)
    if match is None:
        assert rt.predict(**kwargs).pattern == "a"
        return
    with pytest.raises(RequestError, match=match) as info:
        rt.predict(**kwargs)
    assert isinstance(info.value, ValueError)


def test_float16_and_float64_are_converted(small_bundle):
    rt, r = Runtime(small_bundle), x()
    ref = rt.predict(audio=r["audio"]).probs
    np.testing.assert_allclose(rt.predict(audio=r["audio"].astype(np.float64)).probs, ref, atol=1e-6)
    np.testing.assert_allclose(rt.predict(audio=r["audio"].astype(np.float16)).probs, ref, atol=2e-3)


def test_nonfinite_absent_treats_that_utterance_as_absent(small_bundle):
    rt, r = Runtime(small_bundle), x(L=5)
    r["audio"][2, 3] = np.nan
    with pytest.raises(RequestError, match=r"audio: NaN or Inf .*batch 0, utterance 2.*nonfinite='absent'"):
        rt.predict(audio=r["audio"], text=r["text"])
    p = rt.predict(audio=r["audio"], text=r["text"], nonfinite="absent")
    mask = np.array([1, 1, 0, 1, 1], bool)
    same = rt.predict(audio=r["audio"], text=r["text"], present={"audio": mask})  # what it means
    assert p.graph == "masked" and p.pattern == "at"
    assert p.present["a"].tolist() == mask.tolist() and p.nonfinite["a"].tolist() == (~mask).tolist()
    np.testing.assert_array_equal(p.probs, same.probs)
    with pytest.raises(RequestError, match="nothing present"):  # the only modality, all NaN
        rt.predict(audio=np.full((3, 6), np.nan), nonfinite="absent")


def test_nonfinite_absent_for_sequence_tokens(derl_bundle):
    rt = Runtime(derl_bundle)
    t = np.random.default_rng(0).standard_normal((6, 32)).astype(np.float32)
    t[4] = np.inf
    p = rt.predict(text=t, nonfinite="absent")
    assert p.graph == "masked" and p.present["t"].tolist() == [True] * 4 + [False, True]
    assert np.isfinite(p.scores) and p.to_dict()["nonfinite"] == {"t": [False] * 4 + [True, False]}


def test_non_finite_graph_output_is_a_model_error_naming_the_graph(small_bundle):
    rt = Runtime(small_bundle)
    real_run = rt.backend.run

    def poisoned(graph, feeds):
        out = real_run(graph, feeds)
        out["logits"][0, 1, 2] = np.nan
        return out

    rt.backend.run = poisoned
    with pytest.raises(ModelError, match=r"graph 'tv' \(fp32, ort-cpu\) returned NaN/Inf in output 'logits'"):
        rt.predict(text=x()["text"], visual=x()["visual"])


def test_to_dict_is_json_with_stable_keys_for_every_family(small_bundle, derl_bundle):
    p = Runtime(small_bundle).predict(**x(L=3, B=2), lengths=[3, 2])
    d = p.to_dict()
    assert tuple(d) == TO_DICT_KEYS and set(d["outputs"]) == {"labels", "probs", "scores"}
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["family"] == "momke" and d["pattern"] == "atv" and d["outputs"]["scores"] is None
    assert d["lengths"] == {"a": [3, 2], "t": [3, 2], "v": [3, 2]} and d["outputs"]["labels"][1][2] == ""
    assert d["router_experts"]["a"] == ["audio_expert", "text_expert", "visual_expert"]
    assert np.array(d["router_weights"]["v"]).shape == (2, 3, 3)
    rng = np.random.default_rng(1)
    q = Runtime(derl_bundle).predict(text=rng.standard_normal((5, 32)), visual=rng.standard_normal((7, 8)))
    e = q.to_dict()
    assert tuple(e) == TO_DICT_KEYS and e["family"] == "derl" and e["outputs"]["labels"] is None
    assert isinstance(e["outputs"]["scores"], float) and e["lengths"] == {"t": 5, "v": 7}
    assert e["router_experts"]["fusion"][0] == "a_private" and np.array(e["router_weights"]["fusion"]).shape[1] == 6
