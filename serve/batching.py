"""One Triton batch -> as few Runtime.predict calls as possible, one answer per request.

Triton hands the model a list of requests (dynamic batching). Requests that give the same
inputs with the same non-batch shapes are concatenated on the batch axis and run as one
call; a group whose call fails is re-run one request at a time, so a bad request gets its own
error and never fails the requests batched with it. With `scheduler on` in the model's
parameters, `run_scheduled` hands the batch to a runtime Scheduler instead, which also joins
requests of one graph whose lengths differ (padded and masked).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .family_io import predict_kwargs, prediction_outputs

Arrays = dict[str, np.ndarray]


def group_key(arrays: Arrays) -> tuple:
    """Requests with equal keys can be concatenated: same inputs present, same shapes and dtypes."""
    return tuple(sorted((name, a.shape[1:], a.dtype.str) for name, a in arrays.items()))


def group_requests(batch: list[Arrays]) -> list[list[int]]:
    """Indices of the requests of a batch, grouped by `group_key`, in arrival order."""
    groups: dict[tuple, list[int]] = {}
    for i, arrays in enumerate(batch):
        groups.setdefault(group_key(arrays), []).append(i)
    return list(groups.values())


def _batch_size(arrays: Arrays) -> int:
    return next(iter(arrays.values())).shape[0] if arrays else 1


def _run_group(predict: Callable, input_kind, members: list[Arrays]) -> list[Arrays]:
    sizes = [_batch_size(a) for a in members]
    joined = {n: np.concatenate([a[n] for a in members]) for n in members[0]} if len(members) > 1 \
        else members[0]
    outputs = prediction_outputs(predict(**predict_kwargs(input_kind, joined)), sum(sizes))
    bounds = np.cumsum([0, *sizes])
    return [{n: v[lo:hi] for n, v in outputs.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]


def run_batch(predict: Callable, input_kind, batch: list[Arrays]) -> list[Arrays | Exception]:
    """Answer every request of a batch: its output tensors, or the exception it raised.
    input_kind: the served family's (Runtime.family.inputs)."""
    results: list[Arrays | Exception | None] = [None] * len(batch)
    for idx in group_requests(batch):
        try:
            for i, out in zip(idx, _run_group(predict, input_kind, [batch[i] for i in idx])):
                results[i] = out
        except Exception as exc:  # noqa: BLE001 — every error goes back to its own request
            if len(idx) == 1:
                results[idx[0]] = exc
                continue
            for i in idx:
                try:
                    results[i] = _run_group(predict, input_kind, [batch[i]])[0]
                except Exception as single:  # noqa: BLE001
                    results[i] = single
    return results


def run_scheduled(scheduler, input_kind, batch: list[Arrays]) -> list[Arrays | Exception]:
    """Answer a batch through a runtime Scheduler (runtime/scheduler.py): every request is
    submitted at once, so requests of one graph run as one call even when their lengths differ
    (run_batch joins equal shapes only); a bad request's error, or an OverloadedError when the
    scheduler's queue is full, is its own."""
    futures: list = []
    for arrays in batch:
        try:
            futures.append(scheduler.submit(**predict_kwargs(input_kind, arrays)))
        except Exception as exc:  # noqa: BLE001 — every error goes back to its own request
            futures.append(exc)
    results: list[Arrays | Exception] = []
    for arrays, fut in zip(batch, futures):
        try:
            if isinstance(fut, Exception):
                raise fut
            results.append(prediction_outputs(fut.result(), _batch_size(arrays)))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)
    return results


def error_message(exc: Exception) -> str:
    """anymodal's message as the client sees it: the error type and its text."""
    return f"{type(exc).__name__}: {exc}"
