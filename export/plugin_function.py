"""The model-local ONNX function behind a `trt.plugins::RouterMix` node.

ONNX Runtime has no RouterMix kernel, so it inlines this standard-op definition (the fused
graphs stay verifiable on any CPU); TensorRT >= 10.9 with the plugin registered runs the
Triton kernel instead, and older TensorRT's parser inlines the function like ORT does.
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, helper

from anymodal.kernels.plugin_id import PLUGIN_DOMAIN, PLUGIN_ID, PLUGIN_NAME

from .specs import OPSET

LOCAL_PREFIX = f"{PLUGIN_ID}/"  # no torch-exported tensor is named like this


def _n(*names: str) -> list:
    """The function-local names of `names`."""
    return [LOCAL_PREFIX + n for n in names]


def _node(op: str, inputs: list, outputs: list, **attrs):
    return helper.make_node(op, _n(*inputs), _n(*outputs), **attrs)


def _const(name: str, value: float) -> list:
    return [_node("Constant", [], [f"{name}_f32"], value_float=value),
            _node("CastLike", [f"{name}_f32", "x"], [name])]


def router_mix_function() -> onnx.FunctionProto:
    """inputs x [*, d], w1 [d, d], b1 [d], w2 [d, E], b2 [E], experts [*, E, do], mask [*];
    outputs mixed [*, do], weights [*, E]; attributes temperature (float), plugin_namespace."""
    temp = _node("Constant", [], ["temp_f32"])
    temp.attribute.append(AttributeProto(name="value_float", ref_attr_name="temperature",
                                         type=AttributeProto.FLOAT))
    nodes = [
        *_const("inv_sqrt2", 0.7071067811865476), *_const("one", 1.0), *_const("half", 0.5),
        temp, _node("CastLike", ["temp_f32", "x"], ["temp"]),
        _node("Constant", [], ["last"], value_ints=[-1]),
        _node("Constant", [], ["expert_axis"], value_ints=[-2]),
        _node("MatMul", ["x", "w1"], ["h0"]),
        _node("Add", ["h0", "b1"], ["h1"]),
        _node("Mul", ["h1", "inv_sqrt2"], ["hs"]),  # exact GELU
        _node("Erf", ["hs"], ["erf"]),
        _node("Add", ["erf", "one"], ["erf1"]),
        _node("Mul", ["h1", "erf1"], ["g0"]),
        _node("Mul", ["g0", "half"], ["g"]),
        _node("MatMul", ["g", "w2"], ["l0"]),
        _node("Add", ["l0", "b2"], ["logits"]),
        _node("Div", ["logits", "temp"], ["scaled"]),
        _node("Softmax", ["scaled"], ["weights"], axis=-1),
        _node("Unsqueeze", ["weights", "last"], ["w_col"]),  # [*, E, 1]
        _node("Mul", ["w_col", "experts"], ["weighted"]),
        _node("ReduceSum", ["weighted", "expert_axis"], ["summed"], keepdims=0),
        _node("CastLike", ["mask", "x"], ["keep"]),
        _node("Unsqueeze", ["keep", "last"], ["keep_col"]),
        _node("Mul", ["summed", "keep_col"], ["mixed"]),
    ]
    return helper.make_function(
        PLUGIN_DOMAIN, PLUGIN_NAME, _n("x", "w1", "b1", "w2", "b2", "experts", "mask"),
        _n("mixed", "weights"), nodes, [helper.make_opsetid("", OPSET)],
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
