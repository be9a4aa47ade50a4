"""Fused-node graphs: one trt.plugins::RouterMix node per router+mix, runnable on ORT CPU
through its model-local function, equal to the standard graphs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anymodal.export.specs import GRAPH_NAMES
from anymodal.export.torch_export import example_feeds
from anymodal.runtime.families import UTTERANCES
from anymodal_testing.helpers import DIMS


@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_fused_graph_matches_standard_graph_on_ort_cpu(fused_bundle, small_bundle, graph):
    dims = dict(zip("atv", DIMS))
    fused = ort.InferenceSession(str(fused_bundle / "graphs" / f"{graph}.onnx"))
    plain = ort.InferenceSession(str(small_bundle / "graphs" / f"{graph}.onnx"))
    for batch, seq in ((1, 1), (3, 9)):
        feeds = example_feeds(UTTERANCES.graph_inputs(graph, dims), batch, seq, seed=7)
        for f, p in zip(fused.run(None, feeds), plain.run(None, feeds)):
            np.testing.assert_allclose(f, p, atol=1e-5, rtol=0)


def test_plugin_node_naming_and_local_function(fused_bundle):
    model = onnx.load(str(fused_bundle / "graphs" / "av.onnx"), load_external_data=False)
    nodes = [n for n in model.graph.node if n.op_type == "RouterMix"]
    assert len(nodes) == 2  # one per present modality
    for n in nodes:
        assert n.domain == "trt.plugins"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_namespace"] == b"anymodal" and attrs["temperature"] == 1.0
        assert len(n.input) == 7 and len(n.output) == 2
    fns = [(f.domain, f.name) for f in model.functions]
    assert fns == [("trt.plugins", "RouterMix")]
    assert {o.domain: o.version for o in model.opset_import}["trt.plugins"] == 1
    # the standard ops of the router/mix live only inside the function now
    assert not any(n.op_type == "Softmax" and "router" in n.name for n in model.graph.node)


def test_fused_bundle_is_verified_and_marked(fused_bundle):
    import json

    mf = json.loads((fused_bundle / "manifest.json").read_text())
    assert mf["kernels"] == "fused"
    assert all(r["max_error"] <= 1e-4 for r in mf["parity"]["fp32"].values())
