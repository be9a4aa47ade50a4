"""The model-local ONNX function behind a `trt.plugins::RouterMix` node.

ONNX Runtime has no RouterMix kernel, so it inlines this standard-op definition (the fused
graphs stay verifiable on any CPU); TensorRT >= 10.9 with the plugin registered runs the
Triton kernel instead, and older TensorRT's parser inlines the function like ORT does.
"""

from __future__ import annotations

import onnx
from anymodal.train.models.fused import PLUGIN_DOMAIN, PLUGIN_NAME
from onnx import AttributeProto, helper

from .specs import OPSET


def _const(name: str, value: float) -> list:
    return [helper.make_node("Constant", [], [f"{name}_f32"], value_float=value),
            helper.make_node("CastLike", [f"{name}_f32", "x"], [name])]


def router_mix_function() -> onnx.FunctionProto:
    """inputs x [*, d], w1 [d, d], b1 [d], w2 [d, E], b2 [E], experts [*, E, do], mask [*];
    outputs mixed [*, do], weights [*, E]; attributes temperature (float), plugin_namespace."""
    temp = helper.make_node("Constant", [], ["temp_f32"])
    temp.attribute.append(AttributeProto(name="value_float", ref_attr_name="temperature",
                                         type=AttributeProto.FLOAT))
    nodes = [
        *_const("inv_sqrt2", 0.7071067811865476), *_const("one", 1.0), *_const("half", 0.5),
        temp, helper.make_node("CastLike", ["temp_f32", "x"], ["temp"]),
        helper.make_node("Constant", [], ["last"], value_ints=[-1]),
        helper.make_node("Constant", [], ["expert_axis"], value_ints=[-2]),
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Mul", ["h1", "inv_sqrt2"], ["hs"]),  # exact GELU
        helper.make_node("Erf", ["hs"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["erf1"]),
        helper.make_node("Mul", ["h1", "erf1"], ["g0"]),
        helper.make_node("Mul", ["g0", "half"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Div", ["logits", "temp"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["weights"], axis=-1),
        helper.make_node("Unsqueeze", ["weights", "last"], ["w_col"]),  # [*, E, 1]
        helper.make_node("Mul", ["w_col", "experts"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "expert_axis"], ["summed"], keepdims=0),
        helper.make_node("CastLike", ["mask", "x"], ["keep"]),
        helper.make_node("Unsqueeze", ["keep", "last"], ["keep_col"]),
        helper.make_node("Mul", ["summed", "keep_col"], ["mixed"]),
    ]
    return helper.make_function(
        PLUGIN_DOMAIN, PLUGIN_NAME, ["x", "w1", "b1", "w2", "b2", "experts", "mask"],
        ["mixed", "weights"], nodes, [helper.make_opsetid("", OPSET)],
        attributes=["temperature", "plugin_namespace"])


def attach_plugin_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the RouterMix function and its domain to a model that uses the node."""
    if not any(n.domain == PLUGIN_DOMAIN for n in model.graph.node):
        return model
    if not any(f.domain == PLUGIN_DOMAIN and f.name == PLUGIN_NAME for f in model.functions):
        model.functions.append(router_mix_function())
    if not any(o.domain == PLUGIN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    return model
