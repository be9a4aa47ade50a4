"""The streaming Python-backend model (`<name>_stream`): live conversations over Triton's
sequence batcher, the correlation id as the conversation id (serve/sequences.py).

    sequence_batching { max_sequence_idle_microseconds  control_input START, END
                        oldest { max_candidate_sequences = max_streams } }

One runtime Scheduler per model instance holds the open conversations (Triton sends every
request of a sequence to the same instance); each batch the sequence batcher forms (at most one
turn per sequence) runs as one batched step-graph call. Idle streams are evicted by the
Scheduler's own clock at the config's max_sequence_idle_microseconds, since Triton does not
tell a backend when it reaps a sequence (server#3492). Prometheus metrics, per instance:
anymodal_sequences_open (gauge), anymodal_sequences_ended_total and
anymodal_sequences_evicted_total (counters).
"""

from __future__ import annotations

import json
import threading

from .sequences import SequenceTurn, run_turns
from .triton_model import model_runtime, to_responses

CONTROLS = ("START", "END")  # control inputs: int32 [1, 1], 1 on the sequence's first / last request


class SequenceMetrics:
    """The model's sequence counts on Triton's metrics endpoint (pb_utils custom metrics)."""

    def __init__(self, pb_utils, model: str, instance: str):
        labels = {"model": model, "instance": instance}
        gauge, counter = pb_utils.MetricFamily.GAUGE, pb_utils.MetricFamily.COUNTER
        # the families must outlive their metrics: both kept
        self._families = [pb_utils.MetricFamily(name=n, description=d, kind=k) for n, d, k in (
            ("anymodal_sequences_open", "Conversations this model instance holds state for", gauge),
            ("anymodal_sequences_ended_total", "Sequences ended by their END request", counter),
            ("anymodal_sequences_evicted_total", "Sequences evicted after idle (or for a new one "
                                                 "when the table was full)", counter))]
        self.open, self.ended, self.evicted = (f.Metric(labels=labels) for f in self._families)
        self._lock = threading.Lock()  # execute and the Scheduler's worker both report

    def report(self, open_now: int, ended: int = 0, evicted: int = 0) -> None:
        with self._lock:
            self.open.set(open_now)
            if ended:
                self.ended.increment(ended)
            if evicted:
                self.evicted.increment(evicted)


class TritonStreamModel:
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils  # only inside the Triton Python backend

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        seq = config["sequence_batching"]
        idle_s = int(seq.get("max_sequence_idle_microseconds") or 1_000_000) / 1e6  # Triton's default: 1 s
        max_streams = int(seq["oldest"]["max_candidate_sequences"])
        max_batch = max(1, int(config.get("max_batch_size", 0)))
        self.input_names = [i["name"] for i in config["input"]] + list(CONTROLS)  # controls: not inputs in the config
        self.metrics = SequenceMetrics(pb_utils, args["model_name"], args["model_instance_name"])
        self.runtime = model_runtime(args, params)
        # no delay: Triton already formed the batch, and no turn can arrive while execute waits
        self.scheduler = self.runtime.scheduler(
            max_batch=max_batch, max_delay_ms=0, max_queue=max(256, max_batch), max_streams=max_streams,
            max_context=int(params["max_context"]), idle_timeout_s=idle_s, on_evict=self._evicted)
        self.metrics.report(0)

    def _evicted(self, stream_id, conversation) -> None:
        self.metrics.report(len(self.scheduler.streams), evicted=1)

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils  # only inside the Triton Python backend

        turns = []
        for request in requests:
            tensors = {n: pb_utils.get_input_tensor_by_name(request, n) for n in self.input_names}
            arrays = {n: t.as_numpy() for n, t in tensors.items() if t is not None}
            start, end = (bool(arrays.pop(c).ravel()[0]) if c in arrays else False for c in CONTROLS)
            turns.append(SequenceTurn(request.correlation_id(), start, end, arrays))
        results = run_turns(self.scheduler, turns)
        self.metrics.report(len(self.scheduler.streams), ended=sum(t.end for t in turns))
        return to_responses(pb_utils, results)

    def finalize(self):
        self.scheduler.close(drain=True)
        self.runtime.close()
