"""The Python-backend model that Triton runs for an anymodal repository.

The generated `model.py` of a repository imports `TritonPythonModel` from here, so the server's
Python environment needs anymodal installed (`pip install 'anymodal[cpu]'`, or `[gpu]`).

    runtime flavor: Runtime on the bundle in the version folder; graphs chosen in-process
    graphs flavor:  the same request handling, but every graph runs as its own Triton model
                    (`<prefix>_<graph>`, ONNX Runtime or TensorRT backend) called through BLS
    scheduler on:   (either flavor) each batch Triton hands over goes through a runtime
                    Scheduler: requests of one graph run as one call across lengths
The streaming model (`<name>_stream`, Triton's sequence batcher) is serve/triton_stream.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from anymodal.runtime import Runtime
from anymodal.runtime.bundle import Bundle

from .batching import error_message, run_batch, run_scheduled

GRAPH_OUTPUTS = ("logits", "router_weights")


class BlsBackend:
    """A Runtime backend whose graphs are Triton models, called with Business Logic Scripting."""

    name = "triton-bls"

    def __init__(self, prefix: str):
        self.prefix = prefix

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import triton_python_backend_utils as pb_utils  # only inside the Triton Python backend

        request = pb_utils.InferenceRequest(
            model_name=f"{self.prefix}_{graph}", requested_output_names=list(GRAPH_OUTPUTS),
            inputs=[pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in feeds.items()])
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"graph model {self.prefix}_{graph}: {response.error().message()}")
        return {n: pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in GRAPH_OUTPUTS}

    def close(self) -> None:
        pass


def to_responses(pb_utils, results: list) -> list:
    """One InferenceResponse per result: its output tensors, or its error (anymodal's message)."""
    responses = []
    for result in results:
        if isinstance(result, Exception):
            responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(error_message(result))))
        else:
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in result.items()]))
    return responses


def model_runtime(args: dict, params: dict) -> Runtime:
    """The Runtime on the bundle in the model's version folder, as its parameters say."""
    bundle = Path(args["model_repository"]) / args["model_version"] / "bundle"
    threads = int(params.get("threads", "0")) or None
    return Runtime(bundle, backend=params.get("backend", "auto"), precision=params.get("precision") or None,
                   threads=threads, preload=True)


def bls_runtime(bundle: Path, prefix: str) -> Runtime:
    """A Runtime whose backend is Triton itself (request checks, graph choice, outputs unchanged)."""
    return Runtime.with_backend(Bundle(bundle), BlsBackend(prefix))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if params.get("graph_models"):
            bundle = Path(args["model_repository"]) / args["model_version"] / "bundle"
            self.runtime = bls_runtime(bundle, params["graph_models"])
        else:
            self.runtime = model_runtime(args, params)
        self.input_kind = self.runtime.family.inputs
        self.input_names = [i["name"] for i in config["input"]]
        self.scheduler = None
        if params.get("scheduler") == "on":  # requests of one graph joined across lengths
            max_batch = max(1, int(config.get("max_batch_size", 0)))
            self.scheduler = self.runtime.scheduler(
                max_batch=max_batch, max_delay_ms=float(params.get("scheduler_delay_ms", "1")),
                max_queue=max(256, max_batch))

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils  # only inside the Triton Python backend

        batch = []
        for request in requests:
            tensors = {n: pb_utils.get_input_tensor_by_name(request, n) for n in self.input_names}
            batch.append({n: t.as_numpy() for n, t in tensors.items() if t is not None})
        results = run_scheduled(self.scheduler, self.input_kind, batch) if self.scheduler \
            else run_batch(self.runtime.predict, self.input_kind, batch)
        return to_responses(pb_utils, results)

    def finalize(self):
        if self.scheduler is not None:
            self.scheduler.close(drain=True)
        self.runtime.close()
