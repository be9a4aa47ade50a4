"""ONNX surgery on the ORT-optimised copies (export/ort_graphs.py): remove the shape plumbing the
tracer leaves and ONNX Runtime's session optimiser keeps (rt-bench profile found them in every
served graph). Each pass is exact (no arithmetic changes), so the rewritten graph computes
bit-for-bit what the traced one does; tests/export/test_graph_rewrites.py holds every pattern
and the masked graph of both families to <= 1e-4 anyway.

* `drop_double_not`: Not(Not(x)) -> x, and Not(M(Not(x))) -> M(x) where M only moves elements
  (Gather, Unsqueeze, Reshape, …): the attention's key padding mask, negated for masked_fill
  and negated back by the MultiHeadAttention symbolic.
* `merge_unsqueeze`: Unsqueeze(Unsqueeze(x, a1), a2) -> Unsqueeze(x, a) (constant axes).
* `reshape_skips_shape_ops`: Reshape(S(x), shape) -> Reshape(x, shape) where S only reshapes
  (Unsqueeze, Squeeze, Reshape, Flatten) and feeds nothing else. A Reshape's result depends only
  on its input's elements and `shape`, except where `shape` holds a 0 ("copy that input axis");
  so the pass runs only where no entry can be 0: constants without 0, and axis sizes read by
  Shape (never 0 here: requests with an empty axis are refused, runtime/requests.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

SHAPE_ONLY = ("Unsqueeze", "Squeeze", "Reshape", "Flatten")


class _Graph:
    """Producer/consumer lookups over a graph's nodes, refreshed after each change."""

    def __init__(self, graph):
        self.g = graph
        self.refresh()

    def refresh(self) -> None:
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.uses = Counter(i for n in self.g.node for i in n.input)
        self.uses.update(o.name for o in self.g.output)
        self.init = {i.name: i for i in self.g.initializer}

    def const(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        n = self.producer.get(name)
        if n is not None and n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            return numpy_helper.to_array(n.attribute[0].t)
        return None

    def only_used_by_one(self, name: str) -> bool:
        return self.uses[name] == 1 and name not in {o.name for o in self.g.output}

    def rename_uses(self, old: str, new: str) -> None:
        for n in self.g.node:
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new

    def remove(self, node) -> None:
        self.g.node.remove(node)


# ops that only move or repeat elements: Not(M(Not(x))) == M(x)
MOVES = ("Gather", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Slice", "Transpose", "Expand", "Tile")


def drop_double_not(graph) -> int:
    gr, done, outputs = _Graph(graph), 0, {o.name for o in graph.output}
    for n in list(graph.node):
        if n.op_type != "Not" or n.output[0] in outputs:
            continue
        first, inner = None, gr.producer.get(n.input[0])  # walk up through element moves
        while inner is not None and inner.op_type in MOVES and gr.only_used_by_one(inner.output[0]):
            first, inner = inner, gr.producer.get(inner.input[0])
        if inner is None or inner.op_type != "Not" or (first is not None and not gr.only_used_by_one(inner.output[0])):
            continue
        if first is None:  # Not(Not(x)): the outer's users read x
            gr.rename_uses(n.output[0], inner.input[0])
        else:  # Not(M(Not(x))): M reads x, the outer's users read M's result
            first.input[0] = inner.input[0]
            gr.rename_uses(n.output[0], n.input[0])
        gr.remove(n)
        gr.refresh()
        done += 1
        if gr.uses[inner.output[0]] == 0:
            gr.remove(inner)
            gr.refresh()
            done += 1
    return done


def merged_axes(first, second) -> list[int]:
    """Axes of one Unsqueeze equal to Unsqueeze(., first) then Unsqueeze(., second), both
    non-negative: second's axes index the final rank; first's new axes move past them."""
    second = sorted(int(a) for a in second)
    free = (p for p in range(10**6) if p not in second)  # final positions not inserted by `second`
    kept = [next(free) for _ in range(max(first) + 1)]  # intermediate position p -> final kept[p]
    return sorted(second + [kept[int(a)] for a in first])


def merge_unsqueeze(graph) -> int:
    from onnx import numpy_helper

    gr, done = _Graph(graph), 0
    for n in list(graph.node):
        if n.op_type != "Unsqueeze" or len(n.input) < 2:
            continue
        inner = gr.producer.get(n.input[0])
        if inner is None or inner.op_type != "Unsqueeze" or len(inner.input) < 2 \
                or not gr.only_used_by_one(inner.output[0]):
            continue
        a1, a2 = gr.const(inner.input[1]), gr.const(n.input[1])
        if a1 is None or a2 is None or (a1 < 0).any() or (a2 < 0).any():
            continue  # negative axes need the input rank
        name = f"{n.output[0]}__merged_axes"
        graph.initializer.append(numpy_helper.from_array(np.asarray(merged_axes(a1, a2), np.int64), name))
        n.input[0], n.input[1] = inner.input[0], name
        gr.remove(inner)
        gr.refresh()
        done += 1
    return done


def _never_zero(gr: _Graph, name: str, depth: int = 0) -> bool:
    """Whether a shape tensor can hold no 0 entry (see the module docstring)."""
    value = gr.const(name)
    if value is not None:
        return bool((value != 0).all())
    n = gr.producer.get(name)
    if n is None or depth > 8:
        return False
    if n.op_type == "Concat":
        return all(_never_zero(gr, i, depth + 1) for i in n.input)
    if n.op_type in ("Unsqueeze", "Squeeze", "Reshape", "Gather", "Slice"):  # entries of its data input
        return _never_zero(gr, n.input[0], depth + 1)
    return n.op_type == "Shape"  # axis sizes of a non-empty tensor


def reshape_skips_shape_ops(graph) -> int:
    gr, done = _Graph(graph), 0
    changed = True
    while changed:
        changed = False
        for n in list(graph.node):
            if n.op_type != "Reshape" or any(a.name == "allowzero" and a.i for a in n.attribute):
                continue
            inner = gr.producer.get(n.input[0])
            if inner is None or inner.op_type not in SHAPE_ONLY or not gr.only_used_by_one(inner.output[0]) \
                    or not _never_zero(gr, n.input[1]):
                continue
            n.input[0] = inner.input[0]
            gr.remove(inner)
            gr.refresh()
            done += 1
            changed = True
    return done


PASSES = (drop_double_not, merge_unsqueeze, reshape_skips_shape_ops)


def drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def rewrite_model(model) -> dict[str, int]:
    """Apply every pass to an onnx ModelProto in place; {pass: nodes it removed}."""
    done = {p.__name__: p(model.graph) for p in PASSES}
    drop_unused_initializers(model.graph)
    return done


def rewrite_file(path: Path) -> dict[str, int]:
    """Rewrite the ONNX file at `path` in place (its weights stay inside it)."""
    import onnx

    model = onnx.load(str(path))
    done = rewrite_model(model)
    if any(done.values()):
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return done
