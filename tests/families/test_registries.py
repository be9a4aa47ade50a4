"""The two family registries (runtime: numpy only; train: torch) share one key per family and must
agree about it: the same names, and the runtime half's input kind and dataset layout are the
train half's layout's. Checked for every registered family, the late-fusion example included."""

from __future__ import annotations

import numpy as np
import pytest

from anymodal.runtime.families import InputKind, get_family
from anymodal.runtime.families import family_names as runtime_names
from anymodal.runtime.requests import MASKED, build_request
from anymodal.train.data.layouts import get_layout
from anymodal.train.families import get_train_family, train_family_names
from anymodal_testing import latefusion_family  # noqa: F401  (registers the example family)

# a config per family with what graph_outputs/router_outputs read (the families' own keys)
CONFIGS = {"momke": {"output_dim": 4}, "derl": {"output_dim": 1, "bottleneck": 4, "absent_lengths": [6, 4, 5]},
           "latefusion": {"output_dim": 4}}


def test_same_families_in_both_registries():
    assert set(runtime_names()) == set(train_family_names())
    assert {"momke", "derl", "latefusion"} <= set(runtime_names())


@pytest.mark.parametrize("name", sorted(set(runtime_names()) | set(train_family_names())))
def test_halves_agree_on_input_kind_and_layout(name):
    rt, tr = get_family(name), get_train_family(name)
    assert rt.name == tr.name == name
    assert isinstance(rt.inputs, InputKind)
    layout = get_layout(rt.dataset_layout)
    assert layout is tr.layout, f"{name}: runtime names layout {rt.dataset_layout!r}, train has {tr.layout.name!r}"
    assert rt.inputs is layout.input_kind, f"{name}: {rt.inputs.name} inputs, its layout's samples are " \
                                           f"{layout.input_kind.name}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_decoded_router_keys_are_the_declared_ones(name):
    """What a server declares (router_outputs) is what the family decodes: the keys, and each
    one's per-sample shape (-1 = a length axis)."""
    fam, config = get_family(name), CONFIGS[name]
    dims = dict(zip("atv", (3, 5, 2)))
    lengths = fam.inputs.example_lengths(config, 4)
    req = build_request(fam.inputs, dims, "float32",
                        {m: np.ones((2, lengths[m], dims[m]), np.float32) for m in "atv"})
    outputs = {s.name: np.full([{"batch": 2}.get(d, lengths["a"]) if isinstance(d, str) else d for d in s.shape],
                               0.5, np.float32) for s in fam.graph_outputs(MASKED, config)}
    decoded = fam.decode("emotion", ["a", "b", "c", "d"], req, MASKED, outputs).router_weights
    declared = fam.router_outputs(config)
    assert set(decoded) == set(declared)
    for key, dims_ in declared.items():
        got = decoded[key].shape[1:]
        assert len(got) == len(dims_) and all(d in (-1, g) for d, g in zip(dims_, got)), (key, got, dims_)
