"""TensorRT backend: engines built on this GPU by `rt-build`, run with pycuda buffers.

Engines live in `<bundle>/engines/sm<cc>-trt<version>-<precision>/<graph>.plan`; the backend
uses the directory matching this GPU and this TensorRT (preferring fp16, then int8, then
fp32). tensorrt and pycuda are imported lazily. Needs a GPU: exercised by the `gpu` tests.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import BundleError
from .base import Backend

PREFERENCE = ("fp16", "int8", "fp32")


class TensorRTBackend(Backend):
    name = "tensorrt"
    install_hint = "TensorRT (JetPack on Jetson, NVIDIA's pip index elsewhere) and pip install 'anymodal[trt]'"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import pycuda.driver as cuda
            import tensorrt  # noqa: F401
        except ImportError as exc:
            return False, f"{exc.name} is not installed ({cls.install_hint})"
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                return False, "no CUDA device"
        except Exception as exc:  # pycuda raises its own error types
            return False, f"CUDA is not usable here ({exc})"
        return True, ""

    def __init__(self, bundle, threads=None):
        super().__init__(bundle, threads)
        import pycuda.driver as cuda
        import tensorrt as trt

        cuda.init()
        self._trt, self._cuda = trt, cuda
        self._ctx = cuda.Device(0).retain_primary_context()
        major, minor = cuda.Device(0).compute_capability()
        prefix = f"sm{major}{minor}-trt{trt.__version__}-"
        found = {p.name[len(prefix):]: p for p in (bundle.path / "engines").glob(prefix + "*") if p.is_dir()}
        choice = next((p for p in PREFERENCE if p in found), None)
        if choice is None:
            raise BundleError(f"{bundle.path}: no TensorRT engines for {prefix.rstrip('-')} — "
                              f"build them on this device with rt-build --bundle {bundle.path}")
        self.engine_dir, self.engine_precision = found[choice], choice

    def graph_file(self, graph: str) -> Path:
        plan = self.engine_dir / f"{graph}.plan"
        if not plan.is_file():
            raise BundleError(f"{plan}: missing — rebuild the engines with rt-build")
        return plan

    def _load_impl(self, path: Path):
        self._ctx.push()
        try:
            runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BundleError(f"{path}: TensorRT could not deserialize the engine")
            return {"engine": engine, "context": engine.create_execution_context(),
                    "stream": self._cuda.Stream(), "lock": threading.Lock(), "runtime": runtime}
        finally:
            self._ctx.pop()

    def _run_impl(self, s, feeds):
        trt, cuda = self._trt, self._cuda
        engine, ctx = s["engine"], s["context"]
        with s["lock"]:  # one execution context: one request at a time
            self._ctx.push()
            try:
                keep = []  # device buffers and host arrays must outlive the asynchronous launch
                for name, arr in feeds.items():
                    arr = np.ascontiguousarray(arr)
                    ctx.set_input_shape(name, arr.shape)
                    buf = cuda.mem_alloc(max(arr.nbytes, 1))
                    cuda.memcpy_htod_async(buf, arr, s["stream"])
                    ctx.set_tensor_address(name, int(buf))
                    keep.append((buf, arr))
                outputs = {}
                for i in range(engine.num_io_tensors):
                    name = engine.get_tensor_name(i)
                    if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                        continue
                    shape = tuple(ctx.get_tensor_shape(name))
                    host = np.empty(shape, trt.nptype(engine.get_tensor_dtype(name)))
                    buf = cuda.mem_alloc(max(host.nbytes, 1))
                    ctx.set_tensor_address(name, int(buf))
                    outputs[name] = (host, buf)
                ctx.execute_async_v3(s["stream"].handle)
                for host, buf in outputs.values():
                    cuda.memcpy_dtoh_async(host, buf, s["stream"])
                s["stream"].synchronize()
                return {name: host for name, (host, _) in outputs.items()}
            finally:
                self._ctx.pop()
