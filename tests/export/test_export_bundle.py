import json
import shutil

import numpy as np
import onnx
import pytest

from anymodal.export import specs
from anymodal.export.bundle import write_bundle
from anymodal.runtime.errors import ExportError
from anymodal_testing.helpers import DIMS, make_model, run_config


def test_manifest_records_parity_for_every_graph_at_non_traced_shapes(small_bundle):
    mf = json.loads((small_bundle / "manifest.json").read_text())
    parity = mf["parity"]["fp32"]
    assert set(parity) == set(specs.GRAPH_NAMES)  # 7 patterns + masked
    for graph, res in parity.items():
        assert res["max_error"] <= 1e-4, graph
        shapes = {tuple(s) for s in res["shapes"]}
        assert specs.TRACE_SHAPE not in shapes
        assert {b for b, _ in shapes} >= {1, 5}
    assert mf["opset"] >= 17
    assert set(mf["files"]) >= {f"graphs/{g}.onnx" for g in specs.GRAPH_NAMES} | {"graphs/weights.bin"}


def test_specialised_graphs_hold_only_their_modalities(small_bundle):
    for pattern in ("a", "t", "v", "av", "atv"):
        model = onnx.load(str(small_bundle / "graphs" / f"{pattern}.onnx"), load_external_data=False)
        names = [i.name for i in model.graph.input]
        expected = [{"a": "audio", "t": "text", "v": "visual"}[m] for m in pattern] + ["mask"]
        assert names == expected
        # no projection weight of a missing modality survives (feature dims are distinct; weight
        # matrices only: 1-D constants such as the position frequencies [hidden/2] may share a size)
        dims_in_graph = {d for init in model.graph.initializer if len(init.dims) == 2 for d in init.dims}
        for m, dim in zip("atv", DIMS):
            assert (dim in dims_in_graph) == (m in pattern), (pattern, m)
        # the dynamic axes survived tracing
        shape = model.graph.input[0].type.tensor_type.shape.dim
        assert shape[0].dim_param and shape[1].dim_param


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_weights_stored_once_and_bundle_small(tmp_path):
    model = make_model(hidden=128, depth=2)
    bundle = write_bundle(model, run_config(), tmp_path / "b")
    param_bytes = 4 * sum(p.numel() for p in model.parameters())
    on_disk = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert on_disk <= 1.25 * param_bytes, (on_disk, param_bytes)
    mf = json.loads((bundle / "manifest.json").read_text())
    dedup = mf["variants"]["fp32"]["dedup"]
    assert dedup["logical_bytes"] > 5 * dedup["stored_bytes"]  # 8 graphs share one copy


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_fp16_variant_within_relative_tolerance(small_model, tmp_path):
    bundle = write_bundle(small_model, run_config(), tmp_path / "b", precisions=("fp32", "fp16"))
    mf = json.loads((bundle / "manifest.json").read_text())
    assert set(mf["variants"]) == {"fp32", "fp16"}
    assert all(r["max_error"] <= 1e-2 for r in mf["parity"]["fp16"].values())
    assert (bundle / "graphs" / "fp16" / "weights.bin").is_file()


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_failed_parity_aborts_naming_graph_and_leaves_no_bundle(small_model, tmp_path, monkeypatch):
    import anymodal.export.verify as verify

    monkeypatch.setitem(verify.TOLERANCE, "fp32", 0.0)
    model = make_model(hidden=16, seed=3)
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match=r"parity failed: graph 'a', output '(logits|router_weights)'"):
        write_bundle(model, run_config(), out)
    assert not out.exists()
    assert not list(tmp_path.glob(".bundle.tmp-*"))


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_existing_bundle_replaced_only_on_success(small_bundle, tmp_path, monkeypatch):
    import anymodal.export.verify as verify

    out = tmp_path / "bundle"
    shutil.copytree(small_bundle, out)
    before = (out / "manifest.json").read_bytes()
    monkeypatch.setitem(verify.TOLERANCE, "fp32", 0.0)
    with pytest.raises(ExportError):
        write_bundle(make_model(seed=5), run_config(), out)
    assert (out / "manifest.json").read_bytes() == before


def test_example_feeds_are_ragged_and_never_all_absent():
    from anymodal.export.torch_export import example_feeds
    from anymodal.runtime.families import UTTERANCES

    feeds = example_feeds(UTTERANCES.graph_inputs("masked", dict(zip("atv", DIMS))), 5, 6, seed=0)
    assert feeds["mask"][0].all() and not feeds["mask"][4].all()
    assert feeds["avail"].shape == (5, 6, 3)
    assert np.issubdtype(feeds["audio"].dtype, np.floating)
