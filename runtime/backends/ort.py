"""ONNX Runtime backends: CPU everywhere, CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BundleError
from .base import Backend


def _ort():
    import onnxruntime

    return onnxruntime


class OrtBackend(Backend):
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

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
        # No busy-waiting between ops/requests: on a 2-core machine spinning workers starve the
        # caller (measured: 'a' graph p50 16.0 -> 9.1 ms at 2 threads, batch 1, L=24).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    def _load_impl(self, path: Path):
        ort = _ort()
        try:
            return ort.InferenceSession(str(path), self.session_options(), providers=list(self.providers))
        except Exception as exc:  # ORT raises its own exception types; name the file
            raise BundleError(f"{path}: onnxruntime could not load the graph ({exc})") from exc

    def _check_io(self, graph, session, path):
        self.bundle.check_graph_io(graph, [i.name for i in session.get_inputs()],
                                   [o.name for o in session.get_outputs()], path)

    def _run_impl(self, session, feeds):
        outputs = session.run(None, feeds)
        return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), outputs)}


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
