"""The utterances input kind: the utterances of a conversation (MoMKE, the late-fusion example).

    request   every modality [L, dim] or [B, L, dim], one length L shared by the modalities;
              lengths [B] real utterances; present[m] [(B,) L]
    graphs    <modality> [batch, seq, dim] per present modality, mask [batch, seq];
              masked graph: all three + avail [batch, seq, 3] (per-utterance availability)
    outputs   one row per utterance: [B, L, ...] (padding rows zeroed by the Runtime)
    serving   lengths INT64 [B, 1] (optional)
"""

from __future__ import annotations

import numpy as np

from ..errors import RequestError
from ..patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES
from ..requests import MASKED, full_mask, lengths_mask
from .input_kind import InputKind, ServingTensor, TensorSpec, graph_modalities, pad


class UtteranceInputs(InputKind):
    name = "utterances"
    item = "utterance"
    caller_sets_length = True  # one conversation length for every modality, chosen by the caller
    output_item_dims = (-1,)

    def masks(self, feats, lengths, batched):
        if len({f.shape[1] for f in feats.values()}) > 1:
            shapes = ", ".join(f"{MODALITY_NAMES[m]} {x.shape}" for m, x in feats.items())
            raise RequestError(f"modalities disagree on the conversation length: {shapes}")
        B, L = next(iter(feats.values())).shape[:2]
        if isinstance(lengths, dict):
            raise RequestError("lengths: expected [B] utterance counts shared by the modalities, got a dict")
        shared = full_mask(B, L) if lengths is None else lengths_mask(lengths, B, L, batched, "lengths")
        return dict.fromkeys(feats, shared)  # one object: Request.lengths counts it once

    def check_covered(self, mask, used):
        real = next(iter(mask.values()))  # [B, L]
        covered = np.any(list(used.values()), axis=0)
        if (real & ~covered).any():
            b, t = np.argwhere(real & ~covered)[0]
            raise RequestError(f"present: utterance {t} of batch {b} has every modality absent; "
                               "drop it (lengths) or give a modality")

    def item_rows(self, mask):
        return next(iter(mask.values()))  # [B, L], shared by the modalities

    def merged_masks(self, masks, mods):
        L = max(next(iter(k.values())).shape[1] for k in masks)
        shared = np.concatenate([pad(next(iter(k.values())), L) for k in masks])  # [B, L]
        return dict.fromkeys(mods, L), dict.fromkeys(mods, shared)

    def rows_of(self, lo, hi, mask):
        return slice(lo, hi), slice(0, next(iter(mask.values())).shape[1])  # its own length too

    def graph_inputs(self, graph, dims, float_dtype="float32"):
        specs = [TensorSpec(MODALITY_NAMES[m], ("batch", "seq", dims[m]), float_dtype)
                 for m in graph_modalities(graph)]
        specs.append(TensorSpec("mask", ("batch", "seq"), "bool"))
        if graph == MASKED:
            specs.append(TensorSpec("avail", ("batch", "seq", len(MODALITIES)), "bool"))
        return specs

    def feeds(self, req, graph, dims, float_dtype, config):
        mask = next(iter(req.mask.values()))  # [B, L], shared by the modalities
        B, L = mask.shape
        feeds = {}
        for m in graph_modalities(graph):
            feeds[MODALITY_NAMES[m]] = req.features[m] if m in req.features \
                else np.zeros((B, L, dims[m]), float_dtype)
        feeds["mask"] = mask
        if graph == MASKED:
            feeds["avail"] = np.stack([req.present[m] if m in req.present else np.zeros((B, L), bool)
                                       for m in MODALITIES], axis=-1)  # [B, L, 3]
        return feeds

    def example_lengths(self, config, seq):
        return {m: seq or 24 for m in MODALITIES}  # the conversation length for every modality

    def profile_axes(self, config, opt_seq, max_seq):
        return {"seq": (1, opt_seq, max_seq)}

    def serving_lengths(self, dims):
        return [ServingTensor("lengths", "INT64", (1,), True)]

    def lengths_from_serving(self, arrays):
        return arrays["lengths"].reshape(-1) if "lengths" in arrays else None

    def calibration_present(self, sample, rng):
        """Each utterance one of the seven patterns."""
        L = len(next(iter(sample.values())))
        pats = [ALL_PATTERNS[i] for i in rng.integers(len(ALL_PATTERNS), size=L)]
        return {m: np.array([m in p for p in pats], bool) for m in sample}


UTTERANCES = UtteranceInputs()
