"""What the fake ONNX parser does with model-local functions and plugin nodes: onnx-tensorrt's
importer, on the ONNX model (source: onnx/onnx-tensorrt, 10.1 GA tree, commit 96e7811).

* Node dispatch: a node whose plugin creator is registered ("<plugin_namespace>::<op_type>",
  namespace from the node's `plugin_namespace` attribute, version "1": onnxOpImporters.cpp:
  6438-6446) becomes a plugin layer; otherwise a node naming a model-local function (functions
  are keyed by name only, ModelImporter.cpp:433-438) is inlined; otherwise a non-standard node
  is "Plugin not found" (onnxOpImporters.cpp:6447-6448). In the 10.1 tree ModelImporter.cpp:
  155-168 tries local functions before plugins; the plugin-first order for a registered
  creator is what anymodal relies on for TensorRT >= 10.9 (not verified against that source).
* Inlining (onnxOpImporters.cpp:6458-6576, LocalFunctionImporter): a formal input whose name
  differs from the node's actual input but already names a tensor of the outer scope is NOT
  bound to the actual input: the importer warns "Found input: <formal> that does not
  correspond to an outside scope name. Behavior may be incorrect." and the function body reads
  the outer tensor. The outer scope is the graph's outputs (reserved first, ModelImporter.cpp:
  745-750), inputs, initializers and every tensor imported so far. Values the body writes are
  scoped (NameScope, importerUtils.hpp:387-398: shadowed, restored afterwards); a name the body
  reads but neither binds nor writes resolves to the outer tensor. Node attributes override the
  function's defaults (l.6496-6505).
Inlined tensors get unique flat names, so the result is a plain ONNX graph ONNX Runtime runs."""

from __future__ import annotations

import itertools
from collections import ChainMap
from dataclasses import dataclass, field

import onnx
from onnx import helper

STANDARD_DOMAINS = ("", "ai.onnx")
WARNING = "Found input: {} that does not correspond to an outside scope name. Behavior may be incorrect."


class ParseError(Exception):
    """What the real parser reports through parser.get_error()."""


@dataclass
class Imported:
    model: onnx.ModelProto  # flat: functions inlined; plugin nodes kept as they are
    plugins: list = field(default_factory=list)  # {"node", "plugin_id", "attrs", "inputs", "outputs"}
    warnings: list = field(default_factory=list)


def _namespace(attrs) -> str:
    """The plugin_namespace attribute ("" when absent, onnxOpImporters.cpp:6443)."""
    ns = next((helper.get_attribute_value(a) for a in attrs if a.name == "plugin_namespace"), b"")
    return ns.decode() if isinstance(ns, bytes) else str(ns)


def import_model(model: onnx.ModelProto, has_creator) -> Imported:
    """`has_creator(plugin_id)`: whether TensorRT's plugin registry has that creator."""
    g = model.graph
    functions = {f.name: f for f in model.functions}
    out = Imported(onnx.ModelProto())
    top: dict = {o.name: None for o in g.output}  # reserved, null until produced
    top.update({t.name: t.name for t in g.initializer})
    top.update({v.name: v.name for v in g.input})
    nodes: list = []
    counter = itertools.count()

    def resolve(scope, name):
        if name == "":
            return ""
        if name not in scope:
            raise ParseError(f"Node input was not registered: {name}")  # ModelImporter.cpp:144
        if scope[name] is None:
            raise ParseError(f"{name}: read before it is produced")
        return scope[name]

    def define(scope, name, prefix):
        flat = name if not prefix else f"{prefix}{name}"
        scope[name] = flat  # ChainMap writes go to the innermost scope
        return flat

    def attrs_of(node, bound):
        """The node's attributes with references to the caller's resolved."""
        result = []
        for a in node.attribute:
            if a.ref_attr_name:
                if a.ref_attr_name not in bound:
                    continue
                b = onnx.AttributeProto()
                b.CopyFrom(bound[a.ref_attr_name])
                b.name = a.name
                result.append(b)
            else:
                result.append(a)
        return result

    def visit(node, scope, prefix, bound):
        node_attrs = attrs_of(node, bound)
        plugin_id = f"{_namespace(node_attrs)}::{node.op_type}"
        if node.domain not in STANDARD_DOMAINS and has_creator(plugin_id):
            ins = [resolve(scope, i) for i in node.input]
            outs = [define(scope, o, prefix) for o in node.output]
            new = helper.make_node(node.op_type, ins, outs, name=node.name or f"{plugin_id}#{next(counter)}",
                                   domain=node.domain)
            new.attribute.extend(node_attrs)
            nodes.append(new)
            out.plugins.append({"node": new.name, "plugin_id": plugin_id, "inputs": ins, "outputs": outs,
                                "attrs": {a.name: helper.get_attribute_value(a) for a in node_attrs}})
        elif node.domain not in STANDARD_DOMAINS and node.op_type in functions:
            inline(node, node_attrs, functions[node.op_type], scope, prefix)
        elif node.domain not in STANDARD_DOMAINS:
            raise ParseError(f"{node.name} ({node.op_type}): Plugin not found, are the plugin name, version, "
                             "and namespace correct?")
        else:
            ins = [resolve(scope, i) for i in node.input]
            outs = [define(scope, o, prefix) for o in node.output]
            name = f"{prefix}{node.name or node.op_type}#{next(counter)}" if prefix else node.name
            new = helper.make_node(node.op_type, ins, outs, name=name, domain=node.domain)
            new.attribute.extend(node_attrs)
            nodes.append(new)

    def inline(node, node_attrs, fn, scope, prefix):
        if len(node.input) != len(fn.input):
            raise ParseError(f"LocalFunction has an unexpected number of inputs: {len(node.input)} "
                             f"!= {len(fn.input)}")
        inner = scope.new_child()
        for actual, formal in zip(node.input, fn.input):
            if actual != formal:
                if formal in scope:  # the outer tensor of that name wins
                    out.warnings.append(WARNING.format(formal))
                    continue
                inner[formal] = resolve(scope, actual)
        bound = {a.name: a for a in fn.attribute_proto}
        bound.update({a.name: a for a in node_attrs})  # the node's values first
        sub = f"{prefix}{node.name or fn.name}#{next(counter)}/"
        for n in fn.node:
            visit(n, inner, sub, bound)
        results = [resolve(inner, o) for o in fn.output]
        for flat, name in zip(results, node.output):
            nodes.append(helper.make_node("Identity", [flat], [define(scope, name, prefix)],
                                          name=f"{sub}output:{name}"))

    scope = ChainMap(top)
    for node in g.node:
        visit(node, scope, "", {})
    graph = helper.make_graph(nodes, g.name, list(g.input), list(g.output), list(g.initializer))
    domains = {n.domain for n in nodes}
    opsets = [o for o in model.opset_import if o.domain in STANDARD_DOMAINS or o.domain in domains]
    out.model = helper.make_model(graph, opset_imports=opsets, ir_version=model.ir_version)
    return out
