"""ONNX Runtime backends: CPU everywhere, CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

from ..errors import BundleError
from .base import Backend


def _ort():
    import onnxruntime

    return onnxruntime


class OrtBackend(Backend):
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self, bundle, threads: int | None = None, spinning: bool = False):
        super().__init__(bundle, threads)
        # Intra-op busy-waiting: off by default. Measured side by side by rt-bench (ort vs
        # ort-spin); on a 2-core machine shared with other work spinning workers starve the
        # caller, on a quiet one they save the wake-up latency of every op.
        self.spinning = spinning
        self._output_names: dict[int, list[str]] = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            ort = _ort()
        except ImportError:
            return False, f"onnxruntime is not installed ({cls.install_hint})"
        missing = [p for p in cls.providers if p not in ort.get_available_providers()]
        if missing:
            return False, f"onnxruntime here lacks {', '.join(missing)} ({cls.install_hint})"
        return True, ""

    def session_options(self):
        ort = _ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1  # sequential executor: the graphs are one chain of ops
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        return opts

    def _load_impl(self, path: Path):
        ort = _ort()
        try:
            return ort.InferenceSession(str(path), self.session_options(), providers=list(self.providers))
        except Exception as exc:  # ORT raises its own exception types; name the file
            raise BundleError(f"{path}: onnxruntime could not load the graph ({exc})") from exc

    def _run_impl(self, session, feeds):
        # the request path: output names looked up once per session; ORT returns fresh
        # contiguous numpy arrays, so nothing is copied or converted here
        names = self._output_names.get(id(session))
        if names is None:
            names = self._output_names[id(session)] = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds)))


class OrtCpuBackend(OrtBackend):
    name = "ort-cpu"
    install_hint = "pip install 'anymodal[cpu]'"


class OrtCudaBackend(OrtBackend):
    name = "ort-cuda"
    install_hint = "pip install 'anymodal[gpu]' on a machine with CUDA"
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OrtTensorRTBackend(OrtBackend):
    name = "ort-trt"
    install_hint = "onnxruntime-gpu built with TensorRT, on a machine with CUDA and TensorRT"
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
