"""Several validated requests of one graph as one batched request, and its outputs split back.

The full graphs take a batch axis and per-item masks (utterances: `mask [B, L]`; sequences:
`<modality>_mask [B, T_m]`), so requests of the same graph, pattern and given modalities can
be stacked on the batch axis after padding each length axis to the longest: padding items are
masked out (never keys, zero features) exactly as a request's own `lengths` padding is, so each
request's rows equal what it gets alone (tests/runtime/test_scheduler.py holds that to 1e-5).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .families.base import Decoded
from .families.input_kind import pad as _pad
from .requests import Request


def batch_key(req: Request) -> tuple:
    """Requests with equal keys can share one graph call: the same graph (pattern or masked),
    the same pattern and the same given modalities (an absent-but-given modality is fed
    differently from a missing one, so they must not mix)."""
    return req.graph, req.pattern, tuple(req.features)


def merge_requests(reqs: list[Request]) -> Request:
    """One Request whose batch is the members' batches, in order (all of one batch_key)."""
    first = reqs[0]
    mods = tuple(first.features)
    lengths, mask = first.input_kind.merged_masks([r.mask for r in reqs], mods)  # padded to the longest
    features = {m: np.concatenate([_pad(r.features[m], lengths[m]) for r in reqs]) for m in mods}  # [B, T_m, D_m]
    present = {m: np.concatenate([_pad(r.present[m], lengths[m]) for r in reqs]) for m in mods}  # [B, T_m]
    same_lengths = all(r.features[m].shape[1] == lengths[m] for r in reqs for m in mods)
    merged = Request(first.input_kind, features, mask, present, True, {},
                     complete=same_lengths and all(r.complete for r in reqs))
    if batch_key(merged) != batch_key(first):  # the members' masks decide the graph: never guessed
        raise AssertionError(f"merged requests chose graph {merged.graph!r}/{merged.pattern!r}, "
                             f"members {first.graph!r}/{first.pattern!r}")
    return merged


def split_decoded(dec: Decoded, reqs: list[Request]) -> list[Decoded]:
    """The merged call's Decoded outputs, one per member: its batch rows and, for utterances,
    its own length (outputs [B, L, ...]); copies, so no Prediction holds another's memory."""
    out, lo = [], 0
    for r in reqs:
        hi = lo + r.batch
        index = r.input_kind.rows_of(lo, hi, r.mask)  # its batch rows (utterances: and its length)

        def cut(x):
            return None if x is None else x[index].copy()

        out.append(replace(dec, labels=cut(dec.labels), probs=cut(dec.probs), scores=cut(dec.scores),
                           router_weights={k: cut(v) for k, v in dec.router_weights.items()}))
        lo = hi
    return out
