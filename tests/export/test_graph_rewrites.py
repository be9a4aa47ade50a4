"""The ORT copies' graph surgery (export/graph_rewrites.py): every pattern and the masked graph
of MoMKE (both presets) and DERL, rewritten, against the same copy unrewritten with every
optimisation off: <= 1e-4 fp32 at full, padded and all-absent-key batches; and each pass on a
hand-made graph, so a pass that stops firing or fires where it must not is caught."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from anymodal.export.graph_rewrites import merged_axes, rewrite_file, rewrite_model
from anymodal.export.specs import GRAPH_NAMES, model_graph_specs
from anymodal.export.torch_export import export_graph

from .test_ort_graphs import _edge_feeds, _momke, _real, _session, example_feeds, make_derl


@pytest.fixture(scope="module", params=["momke-paper", "momke-authors", "derl"])
def family_model(request):
    return make_derl() if request.param == "derl" else _momke(request.param.split("-")[1])


@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_rewritten_copy_matches_the_unrewritten_copy(family_model, graph, tmp_path):
    path = export_graph(family_model, graph, tmp_path / "copy.onnx", "fp32", ort_ops=True)
    ref_sess = _session(path, "ORT_DISABLE_ALL")
    before = len(onnx.load(str(path)).graph.node)
    done = rewrite_file(path)
    after = len(onnx.load(str(path)).graph.node)
    assert before - after == sum(done.values()) > 0, done  # every graph carries the mask plumbing
    served = _session(path, "ORT_ENABLE_ALL")
    specs = model_graph_specs(family_model, graph)[0]
    cases = [example_feeds(specs, 1, 24, seed=1), example_feeds(specs, 3, 5, seed=2),
             _edge_feeds(specs, 4, 9, seed=3)]
    for i, feeds in enumerate(cases):
        for name, r, got in zip(("logits", "router_weights"), ref_sess.run(None, feeds), served.run(None, feeds)):
            err = float(np.max(np.abs(_real(r, feeds) - _real(got, feeds))))
            assert err <= 1e-4, (graph, i, name, err)


@pytest.mark.parametrize("first,second,want", [([1], [2], [1, 2]), ([0], [0], [0, 1]), ([2], [1], [1, 3]),
                                               ([0, 2], [1], [0, 1, 3])])
def test_merged_axes_equal_two_unsqueezes(first, second, want):
    x = np.zeros((2, 3))
    two = np.expand_dims(np.expand_dims(x, tuple(first)), tuple(second))
    assert merged_axes(first, second) == want and np.expand_dims(x, tuple(want)).shape == two.shape


def _model(nodes, inits, out_shape):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("m", TensorProto.BOOL, ["B", "L"])],
                              [helper.make_tensor_value_info("y", TensorProto.BOOL, out_shape)],
                              [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, m):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"m": m})[0]


def test_mask_chain_collapses_and_keeps_its_values():
    """The tracer's key padding mask: Unsqueeze ×2, Not ×2, Reshape to a shape read by Shape."""
    nodes = [helper.make_node("Unsqueeze", ["m", "ax1"], ["u1"]), helper.make_node("Unsqueeze", ["u1", "ax1"], ["u2"]),
             helper.make_node("Not", ["u2"], ["n1"]), helper.make_node("Not", ["n1"], ["n2"]),
             helper.make_node("Shape", ["m"], ["s"]), helper.make_node("Reshape", ["n2", "s"], ["y"])]
    model = _model(nodes, {"ax1": [1]}, ["B", "L"])
    m = np.random.default_rng(0).random((3, 4)) > 0.5
    want = _run(model, m)
    done = rewrite_model(model)
    assert done == {"drop_double_not": 2, "merge_unsqueeze": 1, "reshape_skips_shape_ops": 1}
    assert [n.op_type for n in model.graph.node] == ["Shape", "Reshape"]
    np.testing.assert_array_equal(_run(model, m), want)


def test_reshape_with_a_possible_zero_keeps_its_input():
    """shape [0, -1] copies an axis of the Reshape's own input: skipping the Unsqueeze would change it."""
    nodes = [helper.make_node("Unsqueeze", ["m", "ax"], ["u"]), helper.make_node("Reshape", ["u", "shape"], ["y"])]
    model = _model(nodes, {"ax": [0], "shape": [0, -1]}, [1, None])
    done = rewrite_model(model)
    assert done["reshape_skips_shape_ops"] == 0 and [n.op_type for n in model.graph.node] == ["Unsqueeze", "Reshape"]


def test_a_not_that_is_a_graph_output_stays():
    nodes = [helper.make_node("Not", ["m"], ["n1"]), helper.make_node("Not", ["n1"], ["y"])]
    model = _model(nodes, {}, ["B", "L"])
    assert rewrite_model(model)["drop_double_not"] == 0 and len(model.graph.node) == 2


def test_not_around_element_moves_cancels():
    """DERL's mask: Not, Gather (one row), Not -> the Gather alone."""
    nodes = [helper.make_node("Not", ["m"], ["n1"]), helper.make_node("Gather", ["n1", "i"], ["g"], axis=0),
             helper.make_node("Not", ["g"], ["n2"]), helper.make_node("Identity", ["n2"], ["y"])]
    model = _model(nodes, {"i": [1, 0]}, [2, "L"])
    m = np.random.default_rng(1).random((3, 4)) > 0.5
    want = _run(model, m)
    assert rewrite_model(model)["drop_double_not"] == 2
    assert [n.op_type for n in model.graph.node] == ["Gather", "Identity"]
    np.testing.assert_array_equal(_run(model, m), want)


def test_bundles_store_rewritten_copies(small_bundle):
    """write_bundle rewrites every ORT copy: nothing is left for the passes to do."""
    copies = sorted((small_bundle / "graphs").glob("*.ort.onnx"))
    assert len(copies) == len(GRAPH_NAMES)
    for path in copies:
        model = onnx.load(str(path), load_external_data=False)
        assert not any(n.op_type == "Not" for n in model.graph.node), path.name
        assert not any(rewrite_model(model).values()), path.name
