"""TensorRT backend: engines built on this GPU by `rt-build`, run with pycuda buffers.

Engines live in `<bundle>/engines/sm<cc>-<device>-trt<version>-<precision>/<graph>.plan` with
an engines.json (sha256 per plan, profile bounds). The backend uses a folder matching this
device and TensorRT whose engines.json is complete and whose plans match it (the bundle's
precision first, then fp16, int8, fp32 — only the asked one when a precision was asked for:
fp32 must not be served by fp16/int8 engines); others are skipped with the reason, and with
none left construction raises BundleError (naming the engine folders there are) so `auto`
falls through. Per graph: one execution
context, device buffers and pinned host buffers kept between calls (grown when a request is
larger), feeds cast to the engine's tensor dtypes, shapes checked against the recorded profile.
Every CUDA call — buffer frees included — runs with the device's primary context pushed on the
calling thread. tensorrt and pycuda are imported lazily; tested on CPU with tests/support/anymodal_testing/fakes."""

from __future__ import annotations

import json
import threading
import weakref
from pathlib import Path

import numpy as np

from ..bundle import sha256_file
from ..errors import BackendClosedError, BackendUnavailableError, BundleError, InputError
from .base import Backend
from .trt_keys import ENGINES_INDEX, cuda_device_index, engine_key, tensorrt_version_problem

PREFERENCE = ("fp16", "int8", "fp32")


def check_engine_folder(folder: Path, graphs) -> dict:
    """engines.json of a finished build whose plans all match it; BundleError naming the problem."""
    index_path = folder / ENGINES_INDEX
    if not index_path.is_file():
        raise BundleError(f"{folder.name}: no {ENGINES_INDEX} (an interrupted or foreign build)")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{index_path}: not valid JSON ({exc})") from exc
    for graph in graphs:
        entry = index.get("engines", {}).get(graph)
        if entry is None:
            raise BundleError(f"{folder.name}: no engine for graph {graph!r}")
        plan = folder / entry["file"]
        if not plan.is_file():
            raise BundleError(f"{plan}: missing — rebuild the engines with rt-build")
        if sha256_file(plan) != entry["sha256"]:
            raise BundleError(f"{plan}: sha256 differs from {ENGINES_INDEX} — the plan was modified; rebuild")
    return index


class TensorRTBackend(Backend):
    name = "tensorrt"
    install_hint = "TensorRT (JetPack on Jetson, NVIDIA's pip index elsewhere) and pip install 'anymodal[trt]'"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        import importlib.util

        missing = [m for m in ("tensorrt", "pycuda") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{' and '.join(missing)} not installed ({cls.install_hint})"
        try:
            import pycuda.driver as cuda
            import tensorrt
        except ImportError as exc:
            return False, f"{exc.name} cannot be imported ({exc}) ({cls.install_hint})"
        problem = tensorrt_version_problem(tensorrt.__version__)
        if problem:
            return False, problem
        try:
            cuda.init()
            if cuda.Device.count() <= cuda_device_index():
                return False, f"no CUDA device {cuda_device_index()} ({cuda.Device.count()} present)"
        except Exception as exc:  # pycuda raises its own error types
            return False, f"CUDA is not usable here ({exc})"
        return True, ""

    def __init__(self, bundle, threads=None, engine_dir: Path | None = None):
        """engine_dir: serve that folder's engines (rt-build's parity check of a build not yet
        published); by default the folder matching this device, TensorRT and precision."""
        super().__init__(bundle, threads)
        import pycuda.driver as cuda
        import tensorrt as trt

        problem = tensorrt_version_problem(trt.__version__)
        if problem:
            raise BackendUnavailableError(problem)
        cuda.init()
        self._trt, self._cuda = trt, cuda
        dev = cuda.Device(cuda_device_index())
        self.device_name = dev.name()
        self.skipped: list[str] = []
        if engine_dir is not None:
            self.index = check_engine_folder(Path(engine_dir), bundle.graphs)
            self.engine_dir, self.engine_precision = Path(engine_dir), self.index["precision"]
            self._start(dev)
            return
        cc = tuple(dev.compute_capability())
        order = [bundle.precision] + [p for p in PREFERENCE if p != bundle.precision]
        if bundle.requested_precision is not None:  # asked for: never a silent other precision
            order = [bundle.requested_precision]
        for precision in order:
            folder = bundle.path / "engines" / engine_key(cc, trt.__version__, precision, self.device_name)
            if not folder.is_dir():
                continue
            try:
                self.index = check_engine_folder(folder, bundle.graphs)
            except BundleError as exc:
                self.skipped.append(str(exc))
                continue
            self.engine_dir, self.engine_precision = folder, precision
            break
        else:
            wanted = f"sm{cc[0]}{cc[1]} {self.device_name} with TensorRT {trt.__version__}"
            if bundle.requested_precision is not None:
                wanted = f"{bundle.requested_precision} on {wanted}"
            why = f" ({'; '.join(self.skipped)})" if self.skipped else ""
            engines = bundle.path / "engines"
            there = sorted(p.name for p in engines.iterdir() if p.is_dir() and not p.name.startswith(".")) \
                if engines.is_dir() else []
            have = f"; engine folders here: {', '.join(there)}" if there else ""
            raise BundleError(f"{bundle.path}: no usable TensorRT engines for {wanted}{why}{have} — "
                              f"build them on this device with rt-build --bundle {bundle.path}"
                              + (f" --precision {bundle.requested_precision}" if bundle.requested_precision else ""))
        self._start(dev)

    def _start(self, dev) -> None:
        self._ctx = dev.retain_primary_context()
        # A backend dropped without close() still frees its CUDA objects with the context pushed
        # (left to the garbage collector they would be freed without it, or leak). Not at
        # interpreter exit: the driver releases the process's memory then, and CUDA may be gone.
        self._finalizer = weakref.finalize(self, _release, self._ctx, self._cuda, self._sessions, self._lock)
        self._finalizer.atexit = False

    def serves(self, graph: str) -> bool:
        return graph in self.index.get("engines", {})  # rt-build builds the full graphs only

    def graph_file(self, graph: str) -> Path:
        return self.engine_dir / self.index["engines"][graph]["file"]

    def _load_impl(self, path: Path):
        trt = self._trt
        self._ctx.push()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BundleError(f"{path}: TensorRT could not deserialize the engine")
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            return {"engine": engine, "context": engine.create_execution_context(), "runtime": runtime,
                    "stream": self._cuda.Stream(), "lock": threading.Lock(), "buffers": {},
                    "inputs": inputs, "outputs": outputs, "graph": path.stem,
                    "dtypes": {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}}
        finally:
            self._cuda.Context.pop()

    def _buffer(self, s, name: str, nbytes: int):
        """(device allocation, pinned host bytes) of at least nbytes for tensor `name`; grown,
        never shrunk. Called with the context pushed."""
        cur = s["buffers"].get(name)
        if cur is None or cur[2] < nbytes:
            size = max(256, 1 << (max(nbytes, 1) - 1).bit_length())
            if cur is not None:
                cur[0].free()
            s["buffers"][name] = (self._cuda.mem_alloc(size), self._cuda.pagelocked_empty(size, np.uint8), size)
        return s["buffers"][name]

    def _check_bounds(self, s, name: str, shape: tuple) -> None:
        bounds = self.index.get("profiles", {}).get(s["graph"], {}).get(name)
        if bounds is None:
            return
        lo, hi = bounds
        if len(shape) != len(lo) or any(not a <= v <= b for a, v, b in zip(lo, shape, hi)):
            raise InputError(f"{name}: shape {tuple(shape)} is outside the engine's optimisation profile "
                             f"{tuple(lo)} … {tuple(hi)} (rebuild with rt-build --max-batch/--max-seq)")

    def _run_impl(self, s, feeds):
        cuda = self._cuda
        missing = set(s["inputs"]) - set(feeds)
        if missing:
            raise InputError(f"engine {s['graph']} needs inputs {sorted(missing)}")
        with s["lock"]:  # one execution context: one request at a time
            ctx = s.get("context")
            if ctx is None:  # close() released this engine while the request waited
                raise BackendClosedError(f"{self.name}: closed while a request on {s['graph']} waited")
            self._ctx.push()
            try:
                stream = s["stream"]
                for name in s["inputs"]:
                    src = np.asarray(feeds[name])
                    with np.errstate(over="ignore"):  # overflow is checked just below
                        arr = np.ascontiguousarray(src, dtype=s["dtypes"][name])  # engine's dtype
                    if arr.dtype == np.float16 and src.dtype != np.float16 and not np.isfinite(arr).all() \
                            and np.isfinite(src).all():
                        raise InputError(f"{name}: values beyond the fp16 range (±65504) for this fp16 engine")
                    self._check_bounds(s, name, arr.shape)
                    if not ctx.set_input_shape(name, arr.shape):
                        raise InputError(f"{name}: TensorRT refused shape {arr.shape} for engine {s['graph']}")
                    dev, host, _ = self._buffer(s, name, arr.nbytes)
                    staged = host[:arr.nbytes]
                    staged[:] = arr.reshape(-1).view(np.uint8)
                    cuda.memcpy_htod_async(dev, staged, stream)
                    ctx.set_tensor_address(name, int(dev))
                shapes = {}
                for name in s["outputs"]:
                    shape = tuple(ctx.get_tensor_shape(name))
                    if any(d < 0 for d in shape):
                        raise BundleError(f"engine {s['graph']}: output {name} has unresolved shape {shape}")
                    shapes[name] = shape
                    nbytes = int(np.prod(shape)) * s["dtypes"][name].itemsize
                    dev, _, _ = self._buffer(s, name, nbytes)
                    ctx.set_tensor_address(name, int(dev))
                if not ctx.execute_async_v3(stream.handle):
                    raise BundleError(f"engine {s['graph']}: TensorRT failed to enqueue the inference")
                for name, shape in shapes.items():
                    nbytes = int(np.prod(shape)) * s["dtypes"][name].itemsize
                    dev, host, _ = self._buffer(s, name, nbytes)
                    cuda.memcpy_dtoh_async(host[:nbytes], dev, stream)
                stream.synchronize()
                return {name: s["buffers"][name][1][:int(np.prod(shape)) * s["dtypes"][name].itemsize]
                        .view(s["dtypes"][name]).reshape(shape).copy() for name, shape in shapes.items()}
            finally:
                cuda.Context.pop()

    def close(self) -> None:
        """Free every engine, execution context, stream and device buffer with the context pushed
        on this thread; later calls raise BackendClosedError."""
        with self._lock:
            self._closed = True
        self._finalizer()


def _release(ctx, cuda, sessions: dict, lock) -> None:
    """Drop every CUDA-owning object while `ctx` is current: buffers freed, then the TensorRT
    execution context before its engine before its runtime, then the stream (their destructors
    call CUDA, which needs the context pushed on this thread)."""
    with lock:
        loaded = list(sessions.values())
        sessions.clear()
    if not loaded:
        return
    ctx.push()
    try:
        for s in loaded:
            with s["lock"]:
                for dev, _, _ in s["buffers"].values():
                    dev.free()
                s["buffers"].clear()
                for key in ("context", "engine", "runtime", "stream"):
                    s.pop(key, None)  # the last reference: destroyed here, context pushed
    finally:
        cuda.Context.pop()
