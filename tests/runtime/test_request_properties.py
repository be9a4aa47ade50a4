"""Property: for any request, Runtime.predict returns a valid, finite Prediction whose pattern is
the modalities it used — or raises one of anymodal's typed errors. Never an untyped exception,
never a NaN served, never a bad item used. For MoMKE, DERL and the test-only late-fusion family.

`make test` runs 2,000 generated requests per family; `make fuzz` 20,000 and prints the counts."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anymodal.runtime import AnymodalError, Prediction, Runtime
from anymodal_testing.helpers import DIMS

NAMES = {"a": "audio", "t": "text", "v": "visual"}
FLOATS = ("float16", "float32", "float64")
BAD_DTYPES = ("int32", "int64", "bool", "object", "complex64")


@st.composite
def arrays(draw, rng_seed, shape, dtype):
    """A feature array (or something that is not one) with optional NaN/Inf/huge values."""
    rng = np.random.default_rng(rng_seed)
    arr = rng.standard_normal(shape)
    spoil = draw(st.sampled_from(["clean"] * 12 + ["nan", "inf", "huge"]))
    if spoil != "clean" and arr.size:
        idx = tuple(rng.integers(0, s) for s in shape)
        arr[idx] = {"nan": np.nan, "inf": -np.inf, "huge": 1e300}[spoil]
    form = draw(st.sampled_from(["array"] * 30 + ["list", "string", "scalar"]))
    with np.errstate(over="ignore", invalid="ignore"):
        if form == "list":
            return arr.astype(dtype).tolist() if dtype in FLOATS else [[0] * 3, [1]]
        if form == "string":
            return "features.npy"
        if form == "scalar":
            return 1.5
        return arr.astype(dtype)


@st.composite
def requests(draw, dims: dict, sequences: bool):
    batched = draw(st.booleans())
    B = draw(st.sampled_from([1, 2, 3] * 6 + [0]))
    L = draw(st.sampled_from([1, 2, 3, 4, 5] * 4 + [0]))
    kwargs, shapes = {}, {}
    for m in "atv":
        if not draw(st.sampled_from([True, True, False])):
            continue
        T = draw(st.sampled_from([1, 2, 3, 4, 5] * 4 + [0])) if sequences else (L if draw(st.sampled_from([True] * 30 + [False])) else L + 1)
        dim = dims[m] if draw(st.sampled_from([True] * 30 + [False])) else dims[m] + 1
        shape = (B, T, dim) if batched else (T, dim)
        if not draw(st.sampled_from([True] * 30 + [False])):
            shape = shape[1:] if batched else (1, 1) + shape  # wrong rank
        dtype = draw(st.sampled_from(FLOATS * 10 + BAD_DTYPES))
        kwargs[NAMES[m]] = draw(arrays(draw(st.integers(0, 2**31)), shape, dtype))
        shapes[m] = shape
    kind = draw(st.sampled_from(["none"] * 4 + ["ok"] * 4 + ["wrong"]))
    if kind != "none":
        present = {}
        pool = "".join(shapes) if shapes and draw(st.sampled_from([True] * 5 + [False])) else "atv"
        for m in draw(st.sets(st.sampled_from(pool))):
            shape = shapes.get(m, (B, L))[:-1] if kind == "ok" else (draw(st.integers(0, 4)),)
            value = np.random.default_rng(draw(st.integers(0, 99))).random(shape) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
            present[draw(st.sampled_from([m, NAMES[m]]))] = value if kind == "ok" else value.astype(int)
        if kind == "wrong" and draw(st.booleans()):
            present = draw(st.sampled_from([[True], "audio", {"x": np.ones(2, bool)}, {3: np.ones(2, bool)}]))
        kwargs["present"] = present
    lk = draw(st.sampled_from(["none"] * 4 + ["ok"] * 4 + ["wrong"]))
    if lk != "none":
        def lens(T):
            n = B if batched else 1
            values = [draw(st.integers(-1 if lk == "wrong" else 1, max(T, 1) + (lk == "wrong"))) for _ in range(n)]
            return values if batched or draw(st.booleans()) else values[0]
        if sequences:
            kwargs["lengths"] = {m: lens(s[-2] if len(s) > 1 else 1) for m, s in shapes.items()
                                 if draw(st.booleans())}
        else:
            kwargs["lengths"] = lens(L)
        if lk == "wrong" and draw(st.booleans()):
            kwargs["lengths"] = draw(st.sampled_from([{"q": [1]}, "3", [1.5], {"a": [True]}, [[1, 2]]]))
    kwargs["nonfinite"] = draw(st.sampled_from(["error"] * 12 + ["absent"] * 6 + ["drop"]))
    return kwargs


def check(p: Prediction, kwargs: dict, sequences: bool, labels: list) -> None:
    """What every served prediction must satisfy."""
    used = "".join(m for m in "atv" if m in p.present and p.present[m].any())
    assert p.pattern == used and p.pattern, (p.pattern, used)
    assert p.graph in (p.pattern, "masked")
    for m in p.pattern:
        x = np.asarray(kwargs[NAMES[m]], dtype=np.float64)
        assert x.dtype.kind == "f"
        batched = x.ndim == 3
        items = x if batched else x[None]
        pres = p.present[m] if batched else p.present[m][None]
        assert pres.shape == items.shape[:2]
        with np.errstate(over="ignore"):  # a used item is finite in the bundle's dtype
            assert np.isfinite(items[pres].astype(np.float32)).all()
        if kwargs.get("nonfinite") == "error":
            assert not p.nonfinite
    outputs = [p.probs, p.scores, *p.router_weights.values()]
    for arr in outputs:
        if arr is not None:
            assert np.isfinite(arr).all() and arr.dtype == np.float32
    lead = p.probs.shape[:-1] if p.probs is not None else p.scores.shape
    first = np.asarray(kwargs[NAMES[p.pattern[0]]])
    batched = first.ndim == 3
    if sequences:  # one output per sample
        assert lead == ((first.shape[0],) if batched else ())
    else:  # one output per utterance
        assert lead == first.shape[:-1]
    if p.probs is not None:
        real = np.any([p.present[m] for m in p.present], axis=0) if not sequences else True
        np.testing.assert_allclose(p.probs.sum(-1)[real], 1, atol=1e-3)
        assert set(np.ravel(p.labels)) <= set(labels) | {""}


def fuzz(rt: Runtime, n: int, sequences: bool, seed: int) -> Counter:
    counts = Counter()
    dims = rt.bundle.dims

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(requests(dims, sequences))
    def prop(kwargs):
        try:
            p = rt.predict(**kwargs)
        except AnymodalError as exc:
            assert isinstance(exc, ValueError) or type(exc).__name__ == "ModelError", repr(exc)
            counts["refused: " + type(exc).__name__] += 1
            return
        counts["served"] += 1
        counts[f"served graph {'masked' if p.graph == 'masked' else 'pattern'}"] += 1
        counts["served with nonfinite items made absent"] += bool(p.nonfinite)
        check(p, kwargs, sequences, rt.bundle.labels)

    prop()
    return counts


@pytest.fixture(scope="session")
def latefusion_bundle(tmp_path_factory):
    from anymodal.export.bundle import write_bundle
    from anymodal_testing import latefusion_family as lf  # registers the family

    model = lf.build(lf.LateFusionConfig(input_dims=DIMS, hidden=8, output_dim=1, task="sentiment")).eval()
    return write_bundle(model, {"data": {}}, tmp_path_factory.mktemp("lf") / "bundle", precisions=("fp16",))


FAMILIES = {"momke": ("small_bundle", False), "derl": ("derl_bundle", True),
            "latefusion": ("latefusion_bundle", False)}


def _run(request, family, n):
    fixture, sequences = FAMILIES[family]
    rt = Runtime(request.getfixturevalue(fixture), backend="ort-cpu", threads=1)
    counts = fuzz(rt, n, sequences, seed=0)
    assert sum(v for k, v in counts.items() if k == "served" or k.startswith("refused")) == n
    assert counts["served"] > n // 4 and counts["served graph masked"] > 0  # the strategies reach both
    return counts


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
@pytest.mark.parametrize("family", FAMILIES)
def test_predict_serves_valid_predictions_or_raises_typed_errors(request, family):
    _run(request, family, 600)  # derandomized: the same 600 every run; `make fuzz` runs 20,000


@pytest.mark.slow
@pytest.mark.fuzz  # ~2.5 min per family on 2 cores: `make fuzz`, outside `make test`'s 5 minutes
@pytest.mark.parametrize("family", FAMILIES)
def test_predict_property_20k(request, family, capsys):
    counts = _run(request, family, 20000)
    with capsys.disabled():
        print(f"\n{family}: 20000 fuzzed requests, 0 untyped exceptions, 0 non-finite outputs: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
