"""The cross-interpreter / cross-architecture parity check must itself catch differences."""

from pathlib import Path

import numpy as np
import pytest

from anymodal_testing.helpers import import_file

HERE = Path(__file__).parent
_cases = import_file(HERE / "cases.py")
ARRAYS, compare_outputs = _cases.ARRAYS, _cases.compare_outputs


def test_compare_outputs_names_every_kind_of_difference():
    ref = {"pattern": "av", "probs": np.array([[0.2, 0.8]]), "labels": np.array(["sad"]),
           "router_weights/a": np.array([[np.nan, 1.0]])}
    assert compare_outputs(ref, dict(ref), atol=1e-5) == []  # NaN where the reference has NaN is equal
    got = {**ref, "pattern": "a", "probs": ref["probs"] + 1e-3, "labels": np.array(["happy"])}
    del got["router_weights/a"]
    problems = "\n".join(compare_outputs(ref, got, atol=1e-5))
    for needle in ("pattern: 'a' != reference 'av'", "probs: max |difference| 0.001",
                   "labels: ['happy'] != reference ['sad']", "router_weights/a: only in reference"):
        assert needle in problems
    assert "shape (2,)" in compare_outputs({"x": np.zeros(1)}, {"x": np.zeros(2)}, 1e-5)[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_bundle, derl_bundle):
    """Cases recorded on the session's MoMKE and DERL bundles (run.py's reference.py exports its own)."""
    pytest.importorskip("torch")
    ref_module = import_file(HERE / "reference.py")

    out = tmp_path_factory.mktemp("portable") / "ref"
    ref_module.main(out, {"momke": small_bundle, "derl": derl_bundle})
    return out


@pytest.mark.slow  # the session's MoMKE and DERL bundles (built by whichever test needs them first)
def test_replay_equals_reference_and_fails_when_perturbed(reference, tmp_path):
    import shutil

    check = import_file(HERE / "check.py").check

    assert check(reference, atol=1e-5) == []
    perturbed = tmp_path / "ref"
    shutil.copytree(reference, perturbed)
    with np.load(perturbed / ARRAYS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = next(k for k in arrays if "/out/" in k and arrays[k].dtype.kind == "f")
    arrays[key] = arrays[key] + 1e-3
    np.savez(perturbed / ARRAYS, **arrays)
    problems = check(perturbed, atol=1e-5)
    assert len(problems) == 1 and "max |difference| 0.001" in problems[0], problems
