"""Running a fake engine whose network has plugin layers: the standard-op parts in ONNX Runtime,
each plugin layer through the emulator of the kernel its AOT function named, with the extra
scalar arguments (N, D, ...) evaluated from the actual shapes the way TensorRT evaluates the
symbolic expressions at enqueue. A wrong launch expression gives wrong numbers here too."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

KERNEL_EMULATORS: dict = {}  # kernel name -> fn(inputs, scalars, attrs) -> outputs


def _session(model: onnx.ModelProto):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # unused initializers of a slice are expected
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _slice(model: onnx.ModelProto, targets: list, known: dict) -> onnx.ModelProto:
    """The standard nodes computing `targets` from the graph inputs and the already known
    tensors `known` ({name: array}), as a model whose inputs are those tensors."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name for t in g.initializer}
    keep, seen, stack = set(), set(), list(targets)
    while stack:
        name = stack.pop()
        if name in seen or name in known or name in inits or name == "":
            continue
        seen.add(name)
        node = producer[name]
        if node.domain not in ("", "ai.onnx"):
            raise RuntimeError(f"plugin output {name} needed before its layer ran")
        if id(node) not in keep:
            keep.add(id(node))
            stack.extend(node.input)
    nodes = [n for n in g.node if id(n) in keep]
    used = {i for n in nodes for i in n.input} | set(targets)
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
              for k, v in known.items() if k in used]
    outputs = [onnx.ValueInfoProto(name=t) for t in targets]
    graph = helper.make_graph(nodes, "slice", inputs, outputs, [t for t in g.initializer if t.name in used])
    return helper.make_model(graph, opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")],
                             ir_version=model.ir_version)


def run_plain(model: onnx.ModelProto, feeds: dict, targets: list, cache: dict | None = None) -> dict:
    """`targets` of a standard-op model (the source model for shape probing included). cache:
    the sliced sessions of one network, by targets and the known tensors' names, dtypes and
    shapes (a slice declares its inputs' shapes), so an engine run again builds none."""
    key = (tuple(targets), tuple((k, v.dtype.str, v.shape) for k, v in sorted(feeds.items())))
    if cache is None or key not in cache:
        sliced = _slice(model, targets, feeds)
        entry = (_session(sliced), [i.name for i in sliced.graph.input])
        if cache is not None:
            cache[key] = entry
    session, names = cache[key] if cache is not None else entry
    return dict(zip(targets, session.run(targets, {k: feeds[k] for k in names})))


def probe(model: onnx.ModelProto, feeds: dict, names: list) -> dict:
    """Values of intermediate tensors `names` of a model ONNX Runtime runs as it is (local
    functions included): the shapes and types TensorRT would infer for the plugin inputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: t for t in m.graph.initializer}
    extra = [n for n in names if n not in inits and n not in feeds]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra)
    got = dict(zip(extra, _session(m).run(extra, feeds)))
    got.update({n: numpy_helper.to_array(inits[n]) for n in names if n in inits})
    got.update({n: feeds[n] for n in names if n in feeds})
    return got


def _env(layer: dict, arrays: list) -> dict:
    """Symbolic dim name -> actual size, from the layer's inputs."""
    env = {}
    for dims, a in zip(layer["dims"], arrays):
        for d, n in zip(dims, a.shape):
            if isinstance(d, str):
                env[d] = int(n)
            elif d != n:
                raise RuntimeError(f"{layer['node']}: built for a constant dim {d}, got {n}")
    return env


def _eval(expr: str, env: dict) -> int:
    return int(eval(expr, {}, dict(env)))  # noqa: S307 (the fake's own expressions)


class PluginNetworkSession:
    """The subset of onnxruntime.InferenceSession the fake engine uses."""

    class _Out:
        def __init__(self, name):
            self.name = name

    def __init__(self, model: onnx.ModelProto, layers: list):
        self.model, self.layers = model, layers
        self.order = {n.name: i for i, n in enumerate(model.graph.node)}
        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self._slices: dict = {}  # run_plain's sessions of this network

    def get_outputs(self):
        return [self._Out(o.name) for o in self.model.graph.output]

    def run(self, _names, feeds: dict) -> list:
        values = dict(feeds)
        for layer in sorted(self.layers, key=lambda la: self.order[la["node"]]):
            need = [i for i in layer["inputs"] if i not in values and i not in self.inits]
            if need:
                values.update(run_plain(self.model, values, need, self._slices))
            arrays = [values[i] if i in values else self.inits[i] for i in layer["inputs"]]
            env = _env(layer, arrays)
            scalars = [_eval(e, env) for e in layer["extra"]]
            outs = KERNEL_EMULATORS[layer["kernel"]](arrays, scalars, layer["attrs"])
            for name, arr, shape in zip(layer["outputs"], outs, layer["out_shapes"]):
                values[name] = np.asarray(arr).reshape([_eval(s, env) for s in shape])
        targets = [o.name for o in self.model.graph.output]
        values.update(run_plain(self.model, values, [t for t in targets if t not in values], self._slices))
        return [values[t] for t in targets]
