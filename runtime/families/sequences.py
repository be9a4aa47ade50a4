"""The sequences input kind: one sample's token sequences, each modality its own length (DERL).

    request   every modality [T_m, dim] or [B, T_m, dim]; lengths {m: [B]}; present {m: [(B,) T_m]}
    graphs    <modality> [batch, seq_<modality>, dim], <modality>_mask [batch, seq_<modality>];
              masked graph: all three + <modality>_avail (False = token missing); an absent
              modality is fed as all-missing at the model's `absent_lengths`
    outputs   one row per sample: [B, ...]
    serving   <modality>_length INT64 [B, 1] (optional)
"""

from __future__ import annotations

import numpy as np

from ..errors import RequestError
from ..patterns import MODALITIES, MODALITY_NAMES
from ..requests import MASKED, full_mask, lengths_mask, per_modality
from .input_kind import InputKind, ServingTensor, TensorSpec, graph_modalities, pad


class SequenceInputs(InputKind):
    name = "sequences"
    item = "token"
    caller_sets_length = False  # each modality at the model's dataset length (absent_lengths)
    output_item_dims = ()

    def masks(self, feats, lengths, batched):
        lens = per_modality(lengths, "lengths")
        for m in lens:
            if m not in feats:
                raise RequestError(f"lengths[{MODALITY_NAMES[m]}] given but no {MODALITY_NAMES[m]} array")
        B = next(iter(feats.values())).shape[0]
        return {m: full_mask(*f.shape[:2]) if m not in lens
                else lengths_mask(lens[m], B, f.shape[1], batched, f"lengths[{MODALITY_NAMES[m]}]")
                for m, f in feats.items()}

    def check_covered(self, mask, used):
        covered = np.any([u.any(axis=1) for u in used.values()], axis=0)  # [B]
        if not covered.all():
            b = int(np.argmin(covered))
            raise RequestError(f"present: sample {b} has every token of every modality absent")

    def merged_masks(self, masks, mods):
        lengths = {m: max(k[m].shape[1] for k in masks) for m in mods}
        return lengths, {m: np.concatenate([pad(k[m], lengths[m]) for k in masks]) for m in mods}  # [B, T_m]

    def graph_inputs(self, graph, dims, float_dtype="float32"):
        names = [MODALITY_NAMES[m] for m in graph_modalities(graph)]
        specs = [TensorSpec(n, ("batch", f"seq_{n}", dims[m]), float_dtype)
                 for n, m in zip(names, graph_modalities(graph))]
        specs += [TensorSpec(f"{n}_mask", ("batch", f"seq_{n}"), "bool") for n in names]
        if graph == MASKED:
            specs += [TensorSpec(f"{n}_avail", ("batch", f"seq_{n}"), "bool") for n in names]
        return specs

    def feeds(self, req, graph, dims, float_dtype, config):
        B = req.batch
        absent = dict(zip(MODALITIES, config["absent_lengths"]))
        x, mask, avail = {}, {}, {}
        for m in graph_modalities(graph):
            n = MODALITY_NAMES[m]
            if m in req.features and (graph != MASKED or req.present[m].any()):
                x[n], mask[n], avail[n] = req.features[m], req.mask[m], req.present[m]
            else:  # an absent sensor: every token missing at the model's absent length
                T = absent[m]
                x[n] = np.zeros((B, T, dims[m]), float_dtype)
                mask[n], avail[n] = np.ones((B, T), bool), np.zeros((B, T), bool)
        feeds = dict(x)
        feeds.update({f"{n}_mask": k for n, k in mask.items()})
        if graph == MASKED:
            feeds.update({f"{n}_avail": k for n, k in avail.items()})
        return feeds

    def example_lengths(self, config, seq):
        return dict(zip(MODALITIES, config["absent_lengths"]))  # the dataset's lengths, in the model

    def profile_axes(self, config, opt_seq, max_seq):
        """Per-modality token axes, optimised for and capped at the model's dataset lengths."""
        return {f"seq_{MODALITY_NAMES[m]}": (1, n, n) for m, n in zip(MODALITIES, config["absent_lengths"])}

    def serving_lengths(self, dims):
        return [ServingTensor(f"{MODALITY_NAMES[m]}_length", "INT64", (1,), True) for m in MODALITIES]

    def lengths_from_serving(self, arrays):
        return {m: arrays[f"{MODALITY_NAMES[m]}_length"].reshape(-1) for m in MODALITIES
                if f"{MODALITY_NAMES[m]}_length" in arrays} or None

    def calibration_present(self, sample, rng):
        """Each modality loses a U(0, 1) fraction of its tokens; one modality keeps all of them."""
        keep = rng.choice(list(sample))
        return {m: np.ones(len(x), bool) if m == keep else rng.random(len(x)) >= rng.random()
                for m, x in sample.items()}


SEQUENCES = SequenceInputs()
