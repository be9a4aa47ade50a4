"""Fake `tensorrt` (10.x / 11.x Python API subset that anymodal uses), backed by ONNX Runtime
on the CPU so that engines compute real results from the bytes in fake device memory.

Kept from TensorRT: DataType enums (not numpy types); engine I/O dtypes are the network's
(weakly typed builds keep the ONNX I/O types, strongly typed fp16 graphs have fp16 I/O);
`set_input_shape` returns False (and logs) for a shape outside the optimisation profile;
`execute_async_v3` returns False when an input shape or address is missing; outputs report -1
dims until all input shapes are set; a plan deserialises only with the TensorRT version that
built it; the ONNX parser refuses Q/DQ with non-zero zero points; an execution context needs a
current CUDA context. The parser imports ONNX local functions and plugin nodes like onnx-tensorrt
(onnx_import.py: a node with a registered QDP creator becomes a PLUGIN_V3 layer, otherwise its
local function is inlined with the outer-scope-wins name rule); the builder calls the QDP's
register and AOT functions (fake_tensorrt_plugin._build_plugin) with the input shapes probed
at the profile's bounds, and an engine with plugin layers runs them through the emulator of the
kernel the AOT function named (plugin_run.py)."""

from __future__ import annotations

import base64
import enum
import json
import sys

import numpy as np

__version__ = "10.13.3"
MAGIC = b"FAKETRT1"
built: list[dict] = []  # what build_serialized_network saw (for assertions)
# engines / execution contexts destroyed, and those destroyed while no CUDA context was current
# (their destructors free device memory through the CUDA runtime, which works on the calling
# thread's current context)
released: list[str] = []
released_without_context: list[str] = []


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


float32, float16, int8, int32, bool, uint8, int64 = (DataType.FLOAT, DataType.HALF, DataType.INT8,  # noqa: A001
                                                     DataType.INT32, DataType.BOOL, DataType.UINT8,
                                                     DataType.INT64)
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}
_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
         2: DataType.UINT8, 7: DataType.INT64}


def nptype(dt: DataType):
    return _NP[DataType(dt)]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class LayerType(enum.IntEnum):  # a subset; the fake gives standard-op layers one type
    ELEMENTWISE = 1
    PLUGIN_V2 = 2
    PLUGIN_V3 = 3


class _Layer:
    def __init__(self, name: str, type_: LayerType):
        self.name, self.type = name, type_


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)
    messages: list[str] = []

    def __init__(self, min_severity=1):
        self.min_severity = min_severity

    def log(self, severity, msg):
        Logger.messages.append(msg)


def _major() -> int:
    return int(__version__.split(".")[0])


# ------------------------------------------------------------------------------ builder
class _Network:
    def __init__(self, flags: int):
        self.strongly_typed = builtins_bool(flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        if _major() >= 11 and not self.strongly_typed:
            raise TypeError("TensorRT 11 builds strongly typed networks only")
        self.inputs, self.outputs, self.onnx_path = [], [], None
        self.layers, self.plugins, self.source = [], [], None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, index: int):
        return self.layers[index]


def builtins_bool(x) -> "bool":
    return x != 0


class OnnxParser:
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]

    def parse_from_file(self, path: str) -> "bool":
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)  # external data too: the parser reads the weights
        inits = {t.name: t for t in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
                zp = inits.get(node.input[2])
                if zp is not None and np.any(numpy_helper.to_array(zp) != 0):
                    self.errors.append(f"{node.name}: TensorRT only supports symmetric quantization. The zero "
                                       "point for the QuantizeLinear/DequantizeLinear operator must be all zeros.")
        if self.errors:
            return False
        from anymodal_testing.fakes.onnx_import import ParseError, import_model

        creators = getattr(sys.modules.get("tensorrt.plugin"), "QDP_CREATORS", {})
        try:
            imported = import_model(model, lambda plugin_id: plugin_id in creators)
        except ParseError as exc:
            self.errors.append(str(exc))
            return False
        Logger.messages.extend(imported.warnings)
        plugin_nodes = {p["node"] for p in imported.plugins}
        self.network.layers = [_Layer(n.name, LayerType.PLUGIN_V3 if n.name in plugin_nodes else LayerType.ELEMENTWISE)
                               for n in imported.model.graph.node]
        self.network.plugins, self.network.source = imported.plugins, model
        model = imported.model
        init_names = set(inits)
        for vi, dst in ((model.graph.input, self.network.inputs), (model.graph.output, self.network.outputs)):
            for v in vi:
                if v.name in init_names:
                    continue
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
                dst.append({"name": v.name, "dtype": int(_ONNX[v.type.tensor_type.elem_type]), "shape": dims})
        self.network.onnx_path = path
        self.network.onnx_bytes = model.SerializeToString()  # a plan is self-contained
        return True


class _Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002
        lo, op, hi = (tuple(int(v) for v in s) for s in (min, opt, max))
        if not (len(lo) == len(op) == len(hi)) or any(not a <= b <= c for a, b, c in zip(lo, op, hi)):
            raise ValueError(f"profile for {name}: need min <= opt <= max, got {lo} {op} {hi}")
        self.shapes[name] = (lo, op, hi)


class _TimingCache:
    def __init__(self, data: bytes):
        self.data = data or b"fake-timing-cache"

    def serialize(self):
        return self.data


class _Config:
    def __init__(self):
        self.flags, self.profiles, self.cache, self.pools = set(), [], None, {}

    def set_memory_pool_limit(self, pool, size):
        self.pools[pool] = size

    def set_flag(self, flag):
        if _major() >= 11:
            raise AttributeError("TensorRT 11 has no weak-typing builder flags")
        self.flags.add(BuilderFlag(flag))

    def create_timing_cache(self, data: bytes):
        return _TimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, logger):
        from pycuda import driver as cuda

        if cuda.Context.get_current() is None and not _primary_ok():
            raise RuntimeError("CUDA initialization failure: no current context")

    def create_network(self, flags: int = 0):
        return _Network(flags)

    def create_builder_config(self):
        return _Config()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        if not config.profiles:
            return None
        prof = config.profiles[0].shapes
        for t in network.inputs:
            if -1 in t["shape"] and t["name"] not in prof:
                Logger.messages.append(f"{t['name']}: dynamic input without a profile")
                return None
        plugins = [_build_layer(network, layer, i, config.profiles[0].shapes) for i, layer in enumerate(network.plugins)]
        built.append({"onnx": network.onnx_path, "flags": sorted(int(f) for f in config.flags),
                      "strongly_typed": network.strongly_typed, "plugins": plugins})
        header = {"version": __version__, "onnx": base64.b64encode(network.onnx_bytes).decode(),
                  "inputs": network.inputs, "plugins": plugins,
                  "outputs": network.outputs, "profile": {k: list(map(list, v)) for k, v in prof.items()}}
        return MAGIC + json.dumps(header).encode()


def _build_layer(network, layer: dict, index: int, profile: dict) -> dict:
    """TensorRT building a QDP layer: input shapes (dims that differ between the profile's min and
    max are symbolic), the register and AOT functions called as tensorrt.plugin calls them."""
    from anymodal_testing.fakes.plugin_run import probe

    plugin = sys.modules["tensorrt.plugin"]
    ends = []
    for k in (0, 2):  # the profile's min and max
        feeds = {t["name"]: np.zeros(profile[t["name"]][k], nptype(t["dtype"])) for t in network.inputs}
        ends.append(probe(network.source, feeds, layer["inputs"]))
    dims, dtypes = [], []
    for j, name in enumerate(layer["inputs"]):
        lo, hi = ends[0][name], ends[1][name]
        dims.append([int(a) if a == b else f"s{index}_{j}_{ax}" for ax, (a, b) in enumerate(zip(lo.shape, hi.shape))])
        dtypes.append(next(dt for dt, npt in _NP.items() if np.dtype(npt) == lo.dtype))
    outs, res = plugin._build_plugin(layer["plugin_id"], dims, None, layer["attrs"], dtypes)
    if res is None:
        raise RuntimeError(f"{layer['plugin_id']}: registered without an AOT implementation")
    kernel, _ptx, _params, extra = res
    return {**layer, "attrs": {k: v.decode() if isinstance(v, bytes) else v for k, v in layer["attrs"].items()},
            "dims": dims, "kernel": kernel if isinstance(kernel, str) else kernel.decode(),
            "extra": [repr(e) for e in extra], "out_shapes": [[repr(e) for e in o.shape_expr] for o in outs]}


def _primary_ok() -> "bool":
    return True  # the CUDA runtime falls back to the current device's primary context


# ------------------------------------------------------------------------------ runtime
class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, plan: bytes):
        if not plan.startswith(MAGIC):
            Logger.messages.append("Serialization assertion failed: magic tag does not match")
            return None
        header = json.loads(plan[len(MAGIC):])
        if header["version"] != __version__:
            Logger.messages.append(f"plan built by TensorRT {header['version']}, this is {__version__}")
            return None
        return ICudaEngine(header)


def _note_release(kind: str) -> None:
    try:
        from pycuda import driver as cuda

        released.append(kind)
        if cuda.Context.get_current() is None:
            released_without_context.append(kind)
    except Exception:  # interpreter shutdown: the fake pycuda may be gone
        pass


class ICudaEngine:
    def __del__(self):
        _note_release("ICudaEngine")

    def __init__(self, header):
        self.h = header
        self.io = [(t, TensorIOMode.INPUT) for t in header["inputs"]] + \
                  [(t, TensorIOMode.OUTPUT) for t in header["outputs"]]
        self._session = None

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]["name"]

    def _t(self, name):
        for t, mode in self.io:
            if t["name"] == name:
                return t, mode
        raise KeyError(name)

    def get_tensor_mode(self, name):
        return self._t(name)[1]

    def get_tensor_dtype(self, name):
        return DataType(self._t(name)[0]["dtype"])

    def get_tensor_shape(self, name):
        return tuple(self._t(name)[0]["shape"])

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(s) for s in self.h["profile"][name]]

    def create_execution_context(self):
        from pycuda import driver as cuda

        if cuda.Context.get_current() is None:
            raise RuntimeError("createExecutionContext: no current CUDA context")
        return IExecutionContext(self)

    def session(self):
        if self._session is None and self.h.get("plugins"):
            import onnx

            from anymodal_testing.fakes.plugin_run import PluginNetworkSession

            self._session = PluginNetworkSession(onnx.load_from_string(base64.b64decode(self.h["onnx"])),
                                                 self.h["plugins"])
        elif self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(base64.b64decode(self.h["onnx"]), providers=["CPUExecutionProvider"])
        return self._session


class IExecutionContext:
    def __del__(self):
        _note_release("IExecutionContext")

    def __init__(self, engine: ICudaEngine):
        self.engine, self.shapes, self.addresses, self._out_shapes = engine, {}, {}, {}

    def set_input_shape(self, name, shape) -> "bool":
        t, mode = self.engine._t(name)
        shape = tuple(int(s) for s in shape)
        lo, _, hi = self.engine.h["profile"].get(name, (t["shape"],) * 3)
        if mode != TensorIOMode.INPUT or len(shape) != len(lo) or \
                any(not a <= s <= b for a, s, b in zip(lo, shape, hi)):
            Logger.messages.append(f"IExecutionContext::setInputShape: {name} {shape} outside profile {lo}..{hi}")
            return False
        self.shapes[name] = shape
        self._out_shapes = {}
        return True

    def _inputs_ready(self) -> "bool":
        return all(t["name"] in self.shapes for t in self.engine.h["inputs"])

    def get_tensor_shape(self, name):
        t, mode = self.engine._t(name)
        if mode == TensorIOMode.INPUT:
            return self.shapes.get(name, tuple(t["shape"]))
        if not self._inputs_ready():
            return tuple(t["shape"])  # -1 where unknown
        if not self._out_shapes:
            feeds = {i["name"]: np.zeros(self.shapes[i["name"]], nptype(i["dtype"])) for i in self.engine.h["inputs"]}
            outs = self.engine.session().run(None, feeds)
            self._out_shapes = {o.name: v.shape for o, v in zip(self.engine.session().get_outputs(), outs)}
        return tuple(self._out_shapes[name])

    def set_tensor_address(self, name, address) -> "bool":
        self.engine._t(name)
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle) -> "bool":
        from pycuda import driver as cuda

        if cuda.Context.get_current() is None:
            raise RuntimeError("enqueueV3: no current CUDA context")
        tensors = self.engine.h["inputs"] + self.engine.h["outputs"]
        if not self._inputs_ready() or any(t["name"] not in self.addresses for t in tensors):
            Logger.messages.append("enqueueV3: not all input shapes / tensor addresses are set")
            return False
        feeds = {}
        for t in self.engine.h["inputs"]:
            dt = np.dtype(nptype(t["dtype"]))
            shape = self.shapes[t["name"]]
            alloc, off = cuda.find(self.addresses[t["name"]])
            n = int(np.prod(shape)) * dt.itemsize
            if off + n > alloc.nbytes:
                raise RuntimeError(f"illegal memory access: input {t['name']} reads past its buffer")
            feeds[t["name"]] = np.frombuffer(bytes(alloc.data[off:off + n]), dt).reshape(shape)
        outs = self.engine.session().run(None, feeds)
        for o, v in zip(self.engine.session().get_outputs(), outs):
            t = self.engine._t(o.name)[0]
            v = np.ascontiguousarray(v, nptype(t["dtype"]))
            alloc, off = cuda.find(self.addresses[o.name])
            if off + v.nbytes > alloc.nbytes:
                raise RuntimeError(f"illegal memory access: output {o.name} writes past its buffer")
            alloc.data[off:off + v.nbytes] = v.tobytes()
        return True
