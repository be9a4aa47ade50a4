"""Shared by the server tests: one real tritonserver on loopback for the test session, and clients."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def infer(protocol: str, address: str, model: str, arrays: dict[str, np.ndarray], client=None,
          **options) -> dict[str, np.ndarray]:
    """One request over HTTP or gRPC -> every output tensor the server answered. client: a
    connection of that protocol to reuse (else one is opened and closed); options: the client's
    infer() keywords (sequence_id, sequence_start, sequence_end for a sequence model)."""
    if protocol == "http":
        import tritonclient.http as lib
    else:
        import tritonclient.grpc as lib
    from tritonclient.utils import np_to_triton_dtype

    conn = client or lib.InferenceServerClient(address)
    inputs = []
    for name, arr in arrays.items():
        t = lib.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)
        inputs.append(t)
    result = conn.infer(model, inputs, **options)
    names = [o["name"] for o in (result.get_response()["outputs"] if protocol == "http"
                                 else result.get_response(as_json=True)["outputs"])]
    if client is None:
        conn.close()
    return {n: result.as_numpy(n) for n in names}


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (the server and its Python-backend stubs)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d.name))
    return pids


def success_count(metrics_text: str, model: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("nv_inference_request_success{") and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no nv_inference_request_success line for {model}")


def metric_sum(metrics_text: str, name: str, model: str) -> float:
    """A metric summed over the series of one model (e.g. each instance's); 0 if none yet."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith(name + "{") and f'model="{model}"' in line)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
