import json

import numpy as np
import pytest

from anymodal.bench.footprint import disk_bytes, footprint, footprint_table
from anymodal.runtime import BundleError, Runtime
from anymodal.runtime.patterns import ALL_PATTERNS
from anymodal_testing.helpers import DIMS


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_disk_bytes_per_precision_add_up_to_the_manifest(small_bundle):
    files = json.loads((small_bundle / "manifest.json").read_text())["files"]
    disk = disk_bytes(small_bundle)
    assert set(disk) == {"fp32", "bundle"}
    assert disk["fp32"] == sum(f["bytes"] for rel, f in files.items() if rel.startswith("graphs/"))
    assert disk["bundle"] >= disk["fp32"]


def test_low_memory_serves_the_same_predictions(small_bundle):
    rng = np.random.default_rng(3)
    x = {name: rng.standard_normal((6, d)).astype(np.float32) for name, d in zip(("audio", "text", "visual"), DIMS)}
    fast, lean = Runtime(small_bundle, backend="ort-cpu"), Runtime(small_bundle, backend="ort-cpu", low_memory=True)
    for pattern in ALL_PATTERNS:
        req = {name: x[name] for m, name in zip("atv", x) if m in pattern}
        np.testing.assert_allclose(lean.predict(**req).probs, fast.predict(**req).probs, atol=1e-6)


def test_footprint_measures_each_mode_in_a_fresh_process(small_bundle):
    rep = footprint(small_bundle, threads=1)
    assert [(m["precision"], m["low_memory"]) for m in rep["memory"]] == [("fp32", False), ("fp32", True)]
    for m in rep["memory"]:
        assert m["graphs_loaded"] == 8 and 0 < m["import_s"] < 30
        for stage in ("after_import_mb", "loaded_mb", "after_requests_mb"):
            assert m[stage]["rss"] > 10
            if m[stage]["pss"] is not None:
                assert m[stage]["pss"] <= m[stage]["rss"] + 1
        assert m["loaded_mb"]["rss"] >= m["after_import_mb"]["rss"]
    assert set(rep["low_memory_latency"]) == {"a", "atv"}
    assert all(t["p50_ms"] > 0 and t["low_memory_p50_ms"] > 0 for t in rep["low_memory_latency"].values())
    table = footprint_table(rep)
    assert table.count("| fp32 |") == 2 and "low_memory latency, {a,t,v}" in table


def test_footprint_of_a_folder_that_is_no_bundle_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="manifest.json: missing"):
        footprint(tmp_path)
