"""Triton's sequence batcher onto the runtime Scheduler's streams (the streaming model's logic).

    results = run_turns(scheduler, [SequenceTurn(correlation_id, start, end, arrays), ...])

Each request of a sequence batch is one turn of one conversation, keyed by Triton's correlation
id; its state (a Conversation of the Scheduler's streams) lives in the model process. START
opens a new stream (one still open under that id ends first); END ends it after this turn, its
state freed once the turn is answered; a turn without START continues the open stream, and one
the model does not hold (ended, evicted after idle, its first turn refused) gets a
StreamClosedError in its own response only. The batch enters the Scheduler at once
(submit_turns), so its turns run as one batched step-graph call. Triton never tells a backend
that it reaped an idle sequence (server#3492): the Scheduler evicts idle streams by its own
clock (idle_timeout_s = the config's max_sequence_idle_microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymodal.runtime.errors import RequestError

from .family_io import turn_kwargs, turn_outputs


@dataclass(frozen=True)
class SequenceTurn:
    sequence_id: int | str  # Triton's correlation id
    start: bool  # the sequence's first request (START)
    end: bool  # its last (END)
    arrays: dict[str, np.ndarray]  # the request's input tensors by name


def run_turns(scheduler, turns: list[SequenceTurn]) -> list[dict[str, np.ndarray] | Exception]:
    """Answer every turn of a sequence batch: its output tensors, or the exception it raised."""
    results: list = [None] * len(turns)
    submitted = []
    for i, t in enumerate(turns):
        try:
            kwargs = turn_kwargs(t.arrays)
        except RequestError as exc:
            results[i] = exc
            if t.start or t.end:  # Triton has opened or freed the sequence whatever the turn held
                scheduler.streams.end(t.sequence_id)
            continue
        submitted.append((i, dict(kwargs, stream_id=t.sequence_id, start=t.start, end=t.end)))
    futures = scheduler.submit_turns([kwargs for _, kwargs in submitted])
    for (i, _), future in zip(submitted, futures):
        try:
            results[i] = turn_outputs(future.result())
        except Exception as exc:  # noqa: BLE001 — every error goes back to its own request
            results[i] = exc
    return results
