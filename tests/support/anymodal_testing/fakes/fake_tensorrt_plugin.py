"""Fake `tensorrt.plugin` (Quickly Deployable Plugins), with the checks and the calling
conventions of the real module (tensorrt_bindings/plugin/_lib.py, _validate.py, _tensor.py,
_plugin_class.py of the bindings wheels 10.9.0.34, 10.13.0.35 and 11.4.0.106; line numbers
below are 10.13's unless said, see README.md here):

* `register`: every argument annotated, TensorDescs first then attributes of a serialisable
  type, no defaults, a return annotation TensorDesc or Tuple[TensorDesc, ...]; registering the
  same id twice raises; a plugin creator is registered at once unless lazy_register
  (_lib.py:440-441). Annotations are read with inspect.signature, as strings if the module
  uses `from __future__ import annotations` — which then fails issubclass() like the real one.
* `aot_impl` (TensorRT >= 10.9 only): the decorator accepts the tensors, a subset of the
  attributes in order, then `outputs, tactic` (_validate.py:282-340); a return annotation of
  Tuple[str|bytes, str|bytes, KernelLaunchParams, SymExprs].
* At build time (`_build_plugin`, what the ONNX parser + TensorRT do): the node's attributes
  become plugin fields in the creator's field order (= the register function's attribute
  order), skipping absent ones; the plugin gets every field as an attribute; the register
  function is called with them by keyword and the AOT function with ALL of them by position:
  `aot(*input_descs, *attrs, output_descs, tactic)` (_plugin_class.py:391, 418-419) — whatever
  subset the decorator accepted.
* ShapeExpr has no __int__; `is_constant` is a property, `constant_value()` a method."""

from __future__ import annotations

import inspect
import types
import typing

import tensorrt as trt

QDP_REGISTRY: dict[str, dict] = {}
QDP_CREATORS: dict[str, dict] = {}  # "ns::name" -> registry entry: what the ONNX parser finds
_AOT = True


def _configure(aot: bool) -> None:
    global _AOT
    _AOT = aot
    if not aot:  # TensorRT 10.7/10.8: no AOT implementations (_export.py:39 IS_AOT_ENABLED is False)
        for name in ("aot_impl", "KernelLaunchParams"):
            globals().pop(name, None)


class ShapeExpr:  # _tensor.py:208-290: no __int__; is_constant a property (264), constant_value() (277)
    def __init__(self, value=None, name: str | None = None):
        if isinstance(value, ShapeExpr):
            value, name = value._value, value._name
        elif value is not None and not isinstance(value, int):
            raise TypeError(f"ShapeExpr from int or ShapeExpr, got {type(value).__name__}")
        self._value, self._name = value, name

    @property
    def is_constant(self) -> bool:
        return self._value is not None

    def constant_value(self) -> int:
        if not self.is_constant:
            raise RuntimeError("Not accessible for non-constant shape expressions. "
                               "Check is_constant to determine accessibility.")
        return self._value

    def _op(self, other, fn, sym):
        other = other if isinstance(other, ShapeExpr) else ShapeExpr(int(other))
        if self.is_constant and other.is_constant:
            return ShapeExpr(fn(self._value, other._value))
        return ShapeExpr(None, f"({self!r}{sym}{other!r})")

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b, "+")

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b, "-")

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b, "*")

    def __floordiv__(self, o):
        return self._op(o, lambda a, b: a // b, "//")

    __radd__, __rmul__ = __add__, __mul__

    def __repr__(self):
        return str(self._value) if self.is_constant else (self._name or "?")

    def _eval(self, env: dict) -> int:
        return self._value if self.is_constant else int(eval(self._name, {}, env))  # noqa: S307


SymIntExpr = SymInt32 = ShapeExpr


class SymExprs:
    def __init__(self, length: int):
        self._exprs = [None] * length

    def __iter__(self):
        return iter(self._exprs)

    def __getitem__(self, i):
        return self._exprs[i]

    def __len__(self):
        return len(self._exprs)

    def __setitem__(self, i, v):
        if i >= len(self._exprs):
            raise IndexError("Index out of range")
        self._exprs[i] = v if isinstance(v, ShapeExpr) else ShapeExpr(int(v))


class ShapeExprs(SymExprs):
    @classmethod
    def from_tuple(cls, exprs):
        inst = cls(len(exprs))
        for i, e in enumerate(exprs):
            inst[i] = e
        return inst

    def numel(self) -> ShapeExpr:
        out = ShapeExpr(1)
        for e in self._exprs:
            out = out * e
        return out


class SymIntExprs(SymExprs):
    pass


class TensorDesc:
    def __init__(self, shape_expr=None, dtype=None):
        if shape_expr is not None and not isinstance(shape_expr, ShapeExprs):
            raise TypeError(f"TensorDesc shape_expr must be ShapeExprs, got {type(shape_expr).__name__}")
        if dtype is not None and not isinstance(dtype, trt.DataType):
            raise TypeError(f"TensorDesc dtype must be a tensorrt.DataType, got {dtype!r}")
        self.shape_expr, self.dtype = shape_expr, dtype

    def like(self) -> "TensorDesc":
        return TensorDesc(self.shape_expr, self.dtype)


def from_shape_expr(shape_expr, dtype) -> TensorDesc:  # _top_level.py:114-130
    if isinstance(shape_expr, tuple):
        shape_expr = ShapeExprs.from_tuple(shape_expr)
    return TensorDesc(shape_expr, dtype)  # a list is not converted: TensorDesc refuses it


def cdiv(first, second) -> ShapeExpr:  # _top_level.py:27-45
    if isinstance(first, int) and isinstance(second, int):
        raise ValueError("Both arguments cannot be 'int's")
    first = first if isinstance(first, ShapeExpr) else ShapeExpr(first)
    return (first + (second - 1)) // second


class KernelLaunchParams:
    def __init__(self, grid_x=1, grid_y=1, grid_z=1, block_x=1, block_y=1, block_z=1, shared_mem=0):
        self.grid_x, self.grid_y, self.grid_z = grid_x, grid_y, grid_z
        self.block_x, self.block_y, self.block_z, self.shared_mem = block_x, block_y, block_z, shared_mem

    def __setattr__(self, name, value):
        self.__dict__[name] = value if isinstance(value, ShapeExpr) else ShapeExpr(int(value))


SERIALIZABLE = (int, float, bytes, bool, str)


def register(plugin_id: str, lazy_register: bool = False):
    def decorator(fn):
        if plugin_id in QDP_REGISTRY:  # _lib.py:416-419
            raise ValueError(f"'op' already has a defintion for '{plugin_id.split('::')[1]}'")
        sig = inspect.signature(fn)
        tensors, attrs, saw_attr = [], {}, False
        for idx, (name, p) in enumerate(sig.parameters.items()):
            if p.annotation is inspect.Parameter.empty:  # _validate.py:102-105
                raise ValueError(f"Argument {name} does not have a type annotation.")
            if p.default is not inspect.Parameter.empty:  # _validate.py:108-111
                raise ValueError(f"Argument {name} has a default value.")
            if issubclass(p.annotation, TensorDesc):  # _validate.py:114: TypeError for string annotations
                if saw_attr:  # _validate.py:115-118
                    raise ValueError("TensorDescs args and attribute args cannot be interspersed.")
                tensors.append(name)
            else:
                if idx == 0:  # _validate.py:124-128
                    raise ValueError("TensorDescs args should come first, followed by attributes.")
                if name in ("outputs", "stream", "tactic"):  # _validate.py:129-133
                    raise ValueError(f"'{name}' is not allowed as a plugin attribute name.")
                if p.annotation not in SERIALIZABLE:  # _validate.py:150-154 (numpy arrays not modelled)
                    raise ValueError(f"Attribute '{name}' of type {p.annotation} is not a supported type.")
                attrs[name] = p.annotation
                saw_attr = True
        ret = sig.return_annotation  # _validate.py:171-200
        if ret is inspect.Parameter.empty:
            raise ValueError(f"No return annotation found for register function. Received signature {sig}.")
        if typing.get_origin(ret) is tuple:
            outs = typing.get_args(ret)
            if not all(inspect.isclass(a) and issubclass(a, TensorDesc) for a in outs):
                raise ValueError("Return types can only be TensorDesc or Tuple[TensorDesc].")
        elif not (inspect.isclass(ret) and issubclass(ret, TensorDesc)):
            raise ValueError(f"Return argument is of type {ret}. Return types can only be TensorDesc or "
                             "Tuple[TensorDesc].")
        else:
            outs = (ret,)
        QDP_REGISTRY[plugin_id] = {"register": fn, "tensors": tensors, "attrs": attrs,
                                   "num_outputs": len(outs), "aot": None, "aot_attrs": []}
        if not lazy_register:  # _lib.py:440-441: the creator joins TensorRT's plugin registry now
            QDP_CREATORS[plugin_id] = QDP_REGISTRY[plugin_id]
        return fn

    return decorator


def aot_impl(plugin_id: str):
    def decorator(fn):
        if plugin_id not in QDP_REGISTRY:
            raise ValueError(f"Plugin {plugin_id} is not registered.")
        d = QDP_REGISTRY[plugin_id]
        sig = inspect.signature(fn)  # _validate.py:282-340: annotations optional, checked if given
        used = []
        for name, p in sig.parameters.items():
            ann = p.annotation
            if ann is not inspect.Parameter.empty:
                if name == "outputs":
                    if typing.get_origin(ann) is not tuple or not all(
                            issubclass(a, TensorDesc) for a in typing.get_args(ann)):
                        raise ValueError("'outputs' should be of type Tuple[TensorDesc].")
                elif name == "tactic":
                    if not issubclass(ann, int):
                        raise ValueError("'tactic' input argument should be an int")
                elif issubclass(ann, TensorDesc):
                    if name not in d["tensors"]:
                        raise ValueError(f"Unexpected tensor '{name}'.")
                else:
                    if name not in d["attrs"]:
                        raise ValueError(f"Unexpected attribute '{name}' specified in aot_impl function.")
                    if ann != d["attrs"][name]:
                        raise ValueError(f"Attribute '{name}' has a type annotation different from registration.")
                    used.append(name)
            elif name in d["attrs"]:
                used.append(name)
        # _validate.py:326-340: tensors, the accepted attributes in register order, outputs, tactic
        expected = "(" + ", ".join(d["tensors"] + [n for n in d["attrs"] if n in used] + ["outputs", "tactic"]) + ")"
        if f"({', '.join(sig.parameters)})" != expected:
            raise ValueError(f"Signature of the aot_impl function '{sig}' does not match the expected "
                             f"input arg schema: {expected}")
        ret = sig.return_annotation  # _validate.py:342-392
        if ret is inspect.Parameter.empty:
            raise ValueError(f"No return annotation found for aot_impl function. Received signature {sig}.")
        args = typing.get_args(ret)
        if typing.get_origin(ret) is not tuple or len(args) != 4:
            raise ValueError("Return annotation should be Tuple[str|bytes, str|bytes, KernelLaunchParams, SymExprs]")
        for a in args[:2]:
            parts = typing.get_args(a) if typing.get_origin(a) in (typing.Union, types.UnionType) else (a,)
            if not all(x in (str, bytes) for x in parts):
                raise ValueError(f"Return annotation '{a}'. Expected 'str' or 'bytes'.")
        if not issubclass(args[2], KernelLaunchParams) or not issubclass(args[3], SymExprs):
            raise ValueError("Return annotation: expected KernelLaunchParams, then SymExprs.")
        d["aot"], d["aot_attrs"] = fn, used
        return fn

    return decorator


def _desc(shape, dtype) -> TensorDesc:
    """A TensorDesc with symbolic dims where `shape` has a str (a dynamic axis) and constants
    elsewhere."""
    exprs = tuple(ShapeExpr(None, s) if isinstance(s, str) else ShapeExpr(int(s)) for s in shape)
    return TensorDesc(ShapeExprs.from_tuple(exprs), dtype)


def plugin_fields(plugin_id: str, node_attrs: dict) -> dict:
    """The attributes a QDP instance receives from an ONNX node: the creator's field names are
    the register function's attributes in declaration order (_lib.py:230-254, 441); the parser
    passes, in that order, each field the node has and skips absent ones with a warning
    (onnx-tensorrt onnxOpImporters.cpp:6116-6125, loadFields); create_plugin refuses a field
    the register function does not declare (_lib.py:262-266) and converts by annotation
    (_lib.py:268-279: str fields are decoded bytes)."""
    d = QDP_REGISTRY[plugin_id]
    attrs = {}
    for name, ann in d["attrs"].items():
        if name not in node_attrs:
            continue
        value = node_attrs[name]
        if ann is str:
            attrs[name] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        else:
            attrs[name] = ann(value)
    return attrs


def _build_plugin(plugin_id: str, shapes: list, dtype, attrs: dict, dtypes: list | None = None):
    """What TensorRT does with a QDP at build time; returns (output descs, AOT result or None).
    `attrs` are the ONNX node's attributes; `dtypes` the inputs' TensorRT types (default:
    `dtype`, BOOL for an input named mask)."""
    d = QDP_REGISTRY[plugin_id]
    dtypes = dtypes or [trt.DataType.BOOL if n == "mask" else dtype for n in d["tensors"]]
    if len(shapes) != len(d["tensors"]):
        raise ValueError(f"{plugin_id}: {len(shapes)} inputs, registered {len(d['tensors'])}")
    ins = [_desc(s, t) for s, t in zip(shapes, dtypes)]
    fields = plugin_fields(plugin_id, attrs)
    outs = d["register"](*ins, **fields)  # _plugin_class.py:67, 137: by keyword, every field
    outs = outs if isinstance(outs, tuple) else (outs,)
    if len(outs) != d["num_outputs"]:
        raise ValueError(f"register function returned {len(outs)} outputs, annotated {d['num_outputs']}")
    for o in outs:
        if not isinstance(o, TensorDesc) or not isinstance(o.shape_expr, ShapeExprs):
            raise TypeError("register function must return TensorDescs with ShapeExprs")
    if d["aot"] is None:
        return outs, None
    # _plugin_class.py:390-393 `_, val = zip(*self.attrs.items())` and 418-419
    # `self.aot_impl_function(*self.input_descs, *val, self.output_descs, self._tactic)`:
    # by position, every attribute the plugin received (11.4: l.375, 402-403)
    res = d["aot"](*ins, *fields.values(), outs, 0)
    name, ptx, params, extra = res
    if not isinstance(name, (str, bytes)) or not isinstance(ptx, (str, bytes)):  # l.422-426
        raise TypeError("Kernel name and PTX must be 'str' or 'bytes'")
    if not isinstance(params, KernelLaunchParams) or not isinstance(extra, SymExprs):  # l.428-432
        raise TypeError("aot_impl must return (name, ptx, KernelLaunchParams, SymExprs)")
    if any(not isinstance(e, ShapeExpr) for e in extra):  # l.446-448: every extra arg a SymInt32
        raise TypeError("Extra args must be a 'tensorrt.plugin.SymInt32'")
    return outs, res
