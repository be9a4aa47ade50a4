"""The lean request path (docs/ARCHITECTURE.md §7): what Runtime.predict serves equals decoding a raw
session.run; Predictions own their arrays; the whole-array finite checks still refuse every
NaN/Inf; the spinning option reaches the ONNX Runtime session. Behaviour only, no timings
(rt-bench measures the overhead: tests/bench/test_lean_rows.py checks its rows)."""

import numpy as np
import pytest

from anymodal import ModelError, RequestError, Runtime
from anymodal.runtime.families import softmax
from anymodal.runtime.requests import all_finite
from anymodal_testing.helpers import DIMS

SPIN_KEY = "session.intra_op.allow_spinning"


def feats(L=5, B=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (L,) if B is None else (B, L)
    return {n: rng.standard_normal(shape + (d,)).astype(np.float32) for n, d in zip(("audio", "text", "visual"), DIMS)}


def raw_outputs(rt, graph, feeds):
    session = rt.backend.session(graph)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds))), session


@pytest.mark.parametrize("pattern", ["a", "tv", "atv"])
def test_predict_equals_decoded_session_run(small_bundle, pattern):
    rt = Runtime(small_bundle, backend="ort-cpu")
    x = {n: v for n, v in feats(B=2).items() if n[0] in pattern}
    p = rt.predict(**x)
    req = rt.request(**x)
    feeds = rt.family.feeds(req, req.graph, rt.bundle.dims, "float32", rt.bundle.model["config"])
    out, _ = raw_outputs(rt, p.graph, feeds)
    assert p.graph == pattern
    np.testing.assert_allclose(p.probs, softmax(out["logits"]), rtol=1e-6, atol=1e-7)
    assert (p.labels == np.asarray(rt.bundle.labels, object)[out["logits"].argmax(-1)]).all()
    for i, m in enumerate(pattern):
        np.testing.assert_array_equal(p.router_weights[m], out["router_weights"][:, :, i])


def test_earlier_predictions_are_not_overwritten(small_bundle):
    """Outputs are not copied any more: a Prediction keeps views of the arrays the backend
    returned, so no later call may write into them."""
    rt = Runtime(small_bundle, backend="ort-cpu")
    first = rt.predict(**feats(seed=1))
    kept = {"probs": first.probs.copy(), "labels": first.labels.copy(),
            **{m: w.copy() for m, w in first.router_weights.items()}}
    second = rt.predict(**feats(seed=2))
    assert not np.array_equal(first.probs, second.probs)  # the second call really differed
    np.testing.assert_array_equal(first.probs, kept["probs"])
    assert (first.labels == kept["labels"]).all()
    for m, w in first.router_weights.items():
        np.testing.assert_array_equal(w, kept[m])
        assert not np.shares_memory(w, second.router_weights[m])


def test_padding_rows_zeroed_in_views_without_touching_real_rows(small_bundle):
    rt = Runtime(small_bundle, backend="ort-cpu")
    x = feats(L=4, B=2)
    full = rt.predict(**x)
    p = rt.predict(**x, lengths=[4, 2])
    for m, w in p.router_weights.items():
        assert (w[1, 2:] == 0).all()
        np.testing.assert_allclose(w[0], full.router_weights[m][0], atol=1e-6)
    assert (p.labels[1, 2:] == "").all() and (p.probs[1, 2:] == 0).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_every_nonfinite_value(bad):
    x = np.ones((3, 7), np.float32)
    assert all_finite(x)
    for i in (0, 10, 20):
        y = x.copy()
        y.flat[i] = bad
        assert not all_finite(y)
    both = x.copy()
    both[0, 0], both[2, 6] = np.inf, -np.inf  # their sum is NaN: still caught
    assert not all_finite(both)
    assert not all_finite(np.full(4, bad, np.float16))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_and_inf_inputs_still_refused(small_bundle, dtype):
    rt = Runtime(small_bundle, backend="ort-cpu")
    for bad in (np.nan, np.inf):
        x = feats(L=5)
        x["text"][3, 1] = bad
        with pytest.raises(RequestError, match=r"text: NaN or Inf .* utterance 3"):
            rt.predict(text=x["text"].astype(dtype))


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nonfinite_output_at_a_real_row_refused(small_bundle, bad):
    rt = Runtime(small_bundle, backend="ort-cpu")
    real_run = rt.backend.run

    def poisoned(graph, feeds):
        out = real_run(graph, feeds)
        out["router_weights"][1, 1, 0, 2] = bad  # sample 1, utterance 1: real (length 2)
        return out

    rt.backend.run = poisoned
    with pytest.raises(ModelError, match=r"NaN/Inf in output 'router_weights'"):
        rt.predict(**feats(L=4, B=2), lengths=[4, 2])


def test_spinning_reaches_the_session_options(small_bundle):
    off, on = Runtime(small_bundle, backend="ort-cpu"), Runtime(small_bundle, backend="ort-cpu", spinning=True)
    assert off.backend.session_options().get_session_config_entry(SPIN_KEY) == "0"  # the default
    assert on.backend.session_options().get_session_config_entry(SPIN_KEY) == "1"
    x = feats()
    np.testing.assert_array_equal(off.predict(**x).probs, on.predict(**x).probs)
    for rt, want in ((off, "0"), (on, "1")):  # the loaded session was built with it
        assert rt.backend.session("atv").get_session_options().get_session_config_entry(SPIN_KEY) == want


@pytest.mark.parametrize("flag,want", [("on", True), ("off", False)])
def test_rt_run_spinning_flag_reaches_the_runtime(small_bundle, tmp_path, monkeypatch, flag, want):
    from typer.testing import CliRunner

    import anymodal.runtime.runner as runner
    from anymodal import cli

    seen = []

    class Recording(Runtime):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.backend.session_options().get_session_config_entry(SPIN_KEY))

    monkeypatch.setattr(runner, "Runtime", Recording)
    np.save(tmp_path / "a.npy", feats()["audio"])
    res = CliRunner().invoke(cli.run_app, ["--bundle", str(small_bundle), "--audio", str(tmp_path / "a.npy"),
                                           "--backend", "ort-cpu", "--spinning", flag])
    assert res.exit_code == 0, res.output
    assert "pattern a via graph a on ort-cpu" in res.output and seen == ["1" if want else "0"]


def test_the_backend_calls_the_sessions_binding_with_session_runs_results(small_bundle):
    """ort-cpu runs a graph through the session's compiled binding (no Python wrapper, whose feed
    checks the manifest already guarantees): same outputs as session.run; the wrapper when a
    session has no such binding."""
    from anymodal.runtime.backends.ort import session_run

    rt = Runtime(small_bundle, backend="ort-cpu")
    x = feats(B=2)
    req = rt.request(**x)
    feeds = rt.family.feeds(req, req.graph, rt.bundle.dims, "float32", rt.bundle.model["config"])
    want, session = raw_outputs(rt, req.graph, feeds)
    assert session_run(session) == session._sess.run
    got = rt.backend.run(req.graph, feeds)
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value)

    class Wrapped:  # an InferenceSession-like object without `_sess`
        def run(self, names, feeds, options=None):
            return "wrapper"

    assert session_run(Wrapped())([], {}, None) == "wrapper"


def test_complete_requests_share_read_only_masks_and_padded_ones_get_their_own(small_bundle):
    rt = Runtime(small_bundle, backend="ort-cpu")
    x = feats(L=4, B=2)
    first, second = rt.request(**x), rt.request(**feats(L=4, B=2, seed=3))
    assert first.complete and first.mask["a"] is second.mask["a"] is first.mask["t"]
    assert not first.mask["a"].flags.writeable and first.mask["a"].all()
    with pytest.raises(ValueError, match="read-only"):
        first.mask["a"][0, 0] = False
    assert {m: v.tolist() for m, v in first.lengths.items()} == {m: [4, 4] for m in "atv"}
    padded = rt.request(**x, lengths=[4, 2])
    assert padded.mask["a"] is not first.mask["a"] and padded.mask["a"].tolist() == [[True] * 4, [True, True, False, False]]
    assert padded.lengths["a"].tolist() == [4, 2]
    p = rt.predict(**feats(L=4))  # unbatched: lengths and present without the batch axis
    assert int(p.lengths["a"]) == 4 and p.present["a"].tolist() == [True] * 4
