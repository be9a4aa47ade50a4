"""The two input kinds a family can declare: the graph inputs they imply (the contract between
the exporter and the runtime, docs/ARCHITECTURE.md §6) and how a validated Request becomes
those feeds.

    utterances   <modality> [batch, seq, dim] per present modality, mask [batch, seq];
                 masked graph: all three + avail [batch, seq, 3] (per-utterance availability)
    sequences    <modality> [batch, seq_<modality>, dim], <modality>_mask [batch, seq_<modality>];
                 masked graph: all three + <modality>_avail (False = token missing); an absent
                 modality is fed as all-missing at the model's `absent_lengths`
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..patterns import MODALITIES, MODALITY_NAMES
from ..requests import MASKED, SEQUENCES, UTTERANCES, Request


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints or axis names ("batch", "seq", "seq_audio", …)
    dtype: str  # numpy dtype name


def _graph_modalities(graph: str) -> tuple[str, ...]:
    return MODALITIES if graph == MASKED else tuple(graph)


class UtteranceInputs:
    name = UTTERANCES
    caller_sets_length = True  # one conversation length for every modality, chosen by the caller

    @staticmethod
    def graph_inputs(graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
        specs = [TensorSpec(MODALITY_NAMES[m], ("batch", "seq", dims[m]), float_dtype)
                 for m in _graph_modalities(graph)]
        specs.append(TensorSpec("mask", ("batch", "seq"), "bool"))
        if graph == MASKED:
            specs.append(TensorSpec("avail", ("batch", "seq", len(MODALITIES)), "bool"))
        return specs

    @staticmethod
    def feeds(req: Request, graph: str, dims: dict[str, int], float_dtype: str,
              config: dict) -> dict[str, np.ndarray]:
        mask = next(iter(req.mask.values()))  # [B, L], shared by the modalities
        B, L = mask.shape
        feeds = {}
        for m in _graph_modalities(graph):
            feeds[MODALITY_NAMES[m]] = req.features[m] if m in req.features \
                else np.zeros((B, L, dims[m]), float_dtype)
        feeds["mask"] = mask
        if graph == MASKED:
            feeds["avail"] = np.stack([req.present[m] if m in req.present else np.zeros((B, L), bool)
                                       for m in MODALITIES], axis=-1)  # [B, L, 3]
        return feeds

    @staticmethod
    def example_lengths(config: dict, seq: int | None) -> dict[str, int]:
        """Item counts of a benchmark request: the conversation length for every modality."""
        return {m: seq or 24 for m in MODALITIES}

    @staticmethod
    def profile_axes(config: dict, opt_seq: int, max_seq: int) -> dict[str, tuple[int, int, int]]:
        """(min, opt, max) of each length axis for a TensorRT optimisation profile."""
        return {"seq": (1, opt_seq, max_seq)}


class SequenceInputs:
    name = SEQUENCES
    caller_sets_length = False  # each modality at the model's dataset length (absent_lengths)

    @staticmethod
    def graph_inputs(graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
        names = [MODALITY_NAMES[m] for m in _graph_modalities(graph)]
        specs = [TensorSpec(n, ("batch", f"seq_{n}", dims[m]), float_dtype)
                 for n, m in zip(names, _graph_modalities(graph))]
        specs += [TensorSpec(f"{n}_mask", ("batch", f"seq_{n}"), "bool") for n in names]
        if graph == MASKED:
            specs += [TensorSpec(f"{n}_avail", ("batch", f"seq_{n}"), "bool") for n in names]
        return specs

    @staticmethod
    def feeds(req: Request, graph: str, dims: dict[str, int], float_dtype: str,
              config: dict) -> dict[str, np.ndarray]:
        B = req.batch
        absent = dict(zip(MODALITIES, config["absent_lengths"]))
        x, mask, avail = {}, {}, {}
        for m in _graph_modalities(graph):
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

    @staticmethod
    def example_lengths(config: dict, seq: int | None) -> dict[str, int]:
        """Benchmark requests use the dataset's sequence lengths recorded in the model."""
        return dict(zip(MODALITIES, config["absent_lengths"]))

    @staticmethod
    def profile_axes(config: dict, opt_seq: int, max_seq: int) -> dict[str, tuple[int, int, int]]:
        """Per-modality token axes, optimised for and capped at the model's dataset lengths."""
        return {f"seq_{MODALITY_NAMES[m]}": (1, n, n) for m, n in zip(MODALITIES, config["absent_lengths"])}


INPUT_KINDS = {UTTERANCES: UtteranceInputs, SEQUENCES: SequenceInputs}
