"""No model-local function may share a name with its graph. onnx-tensorrt binds a
function's formal input to the outer tensor of the same name (the masked graph's RouterMix
read the graph's `mask` instead of `mask & avail[m]`); the exporter checks every graph it
writes (export/function_names.py), and this runs the check over the bundles the fixtures make."""

import onnx
import pytest
from onnx import TensorProto, helper

from anymodal.export.function_names import check_function_names, function_name_collisions
from anymodal.export.plugin_function import router_mix_function
from anymodal.runtime.errors import ExportError

BUNDLES = ["small_bundle", "fused_bundle", "derl_bundle", "causal_bundle"]


def _graph_files(bundle):
    files = sorted(bundle.rglob("*.onnx"))
    assert files
    return files


@pytest.mark.parametrize("fixture", BUNDLES)
def test_no_function_name_is_a_graph_name(request, fixture):
    bundle = request.getfixturevalue(fixture)
    with_functions = 0
    for path in _graph_files(bundle):
        model = onnx.load(str(path), load_external_data=False)
        assert function_name_collisions(model) == {}, path.name
        with_functions += bool(model.functions)
    if fixture == "fused_bundle":  # not vacuous: every portable fused graph calls RouterMix
        assert with_functions >= 8


def _caller(fn: onnx.FunctionProto, graph_input: str) -> onnx.ModelProto:
    """A graph with an input named `graph_input` whose RouterMix node gets other tensors."""
    names = ["x", "w1", "b1", "w2", "b2", "experts", "row_mask"]
    node = helper.make_node(fn.name, names, ["mixed", "weights"], domain=fn.domain, temperature=1.0,
                            plugin_namespace="anymodal")
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names + [graph_input]]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("mixed", "weights")]
    graph = helper.make_graph([node], "g", inputs, outputs)
    return helper.make_model(graph, functions=[fn], opset_imports=[helper.make_opsetid("", 17),
                                                                    helper.make_opsetid(fn.domain, 1)])


def test_a_formal_named_like_a_graph_input_is_refused(tmp_path):
    """The old function's formals were x … mask: a graph input `mask` is refused by name."""
    fn = router_mix_function()
    old = onnx.FunctionProto()
    old.CopyFrom(fn)
    del old.input[:]
    old.input.extend(["x", "w1", "b1", "w2", "b2", "experts", "mask"])
    assert "mask" in function_name_collisions(_caller(old, "mask"))["trt.plugins::RouterMix"]
    onnx.save(_caller(old, "mask"), tmp_path / "old.onnx")
    with pytest.raises(ExportError, match="mask"):
        check_function_names(tmp_path / "old.onnx")
    onnx.save(_caller(fn, "mask"), tmp_path / "new.onnx")
    check_function_names(tmp_path / "new.onnx")  # today's function: nothing shared
