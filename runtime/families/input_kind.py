"""What an input kind is: how the caller's arrays for one sample are laid out, and everything that
follows from it: the length checks of a request, padding when requests are merged, the graph
inputs and feeds (the contract between the exporter and the runtime), the tensors a serving
protocol (Triton) declares, benchmark shapes and TensorRT profiles, and calibration requests.

A family names its kind (`RuntimeFamily.inputs`); the core asks the kind, never its name. The
built-in kinds are UTTERANCES (utterances.py) and SEQUENCES (sequences.py). They live in the
runtime because every layer above reaches the runtime (docs/ARCHITECTURE.md §4a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..patterns import MODALITIES, MODALITY_NAMES
from ..requests import MASKED


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints or axis names ("batch", "seq", "seq_audio", …)
    dtype: str  # numpy dtype name


@dataclass(frozen=True)
class ServingTensor:
    """A request/response tensor of a serving protocol (KServe v2 / Triton), batch axis left out."""
    name: str
    dtype: str  # Triton config type without TYPE_: FP32, BOOL, INT64, STRING
    dims: tuple[int, ...]  # without the batch axis; -1 = variable
    optional: bool = False


def graph_modalities(graph: str) -> tuple[str, ...]:
    return MODALITIES if graph == MASKED else tuple(graph)


def pad(x: np.ndarray, length: int) -> np.ndarray:
    """[B, T, ...] -> [B, length, ...], zeros after T (features) / False (masks)."""
    if x.shape[1] == length:
        return x
    out = np.zeros((x.shape[0], length, *x.shape[2:]), x.dtype)
    out[:, :x.shape[1]] = x
    return out


def present_key(m: str) -> str:
    """The serving input carrying a modality's per-item availability (both kinds)."""
    return f"{MODALITY_NAMES[m]}_present"


class InputKind:
    """Abstract: one instance per kind (UTTERANCES, SEQUENCES)."""

    name: str = "abstract"  # the kind's name in docs and messages
    item: str = "item"  # one position of a modality's array: "utterance" | "token"
    caller_sets_length: bool = True  # benchmarks choose the length (else the model's own lengths)
    # per-sample output axes ahead of the head's (Triton declarations): (-1,) = one row per item
    output_item_dims: tuple[int, ...] = ()

    # -- requests (runtime/requests.py calls these after the checks every kind shares) ----------
    def masks(self, feats: dict[str, np.ndarray], lengths, batched: bool) -> dict[str, np.ndarray]:
        """m -> [B, T_m] bool real items, from the caller's `lengths` (None: all real)."""
        raise NotImplementedError  # abstract

    def check_covered(self, mask: dict[str, np.ndarray], used: dict[str, np.ndarray]) -> None:
        """RequestError unless every real unit (utterance / sample) has some modality used."""
        raise NotImplementedError  # abstract

    def item_rows(self, mask: dict[str, np.ndarray]) -> np.ndarray | None:
        """[B, L] real items when outputs carry one row per item (padding rows are zeroed), else None."""
        return None

    # -- merging requests of one graph (runtime/request_batch.py) -------------------------------
    def merged_masks(self, masks: list[dict[str, np.ndarray]], mods) -> tuple[dict, dict]:
        """(m -> padded length, m -> [sum B, T_m] mask) of several requests stacked on the batch axis."""
        raise NotImplementedError  # abstract

    def rows_of(self, lo: int, hi: int, mask: dict[str, np.ndarray]) -> tuple:
        """The index of one member's outputs in the merged outputs (batch rows lo:hi)."""
        return (slice(lo, hi),)

    # -- graphs -------------------------------------------------------------------------------
    def graph_inputs(self, graph: str, dims: dict[str, int], float_dtype: str = "float32") -> list[TensorSpec]:
        raise NotImplementedError  # abstract

    def feeds(self, req, graph: str, dims: dict[str, int], float_dtype: str, config: dict) -> dict[str, np.ndarray]:
        """Feeds of `graph` for a validated Request, in the graph's input order."""
        raise NotImplementedError  # abstract

    def example_lengths(self, config: dict, seq: int | None) -> dict[str, int]:
        """Item counts per modality of a benchmark request."""
        raise NotImplementedError  # abstract

    def profile_axes(self, config: dict, opt_seq: int, max_seq: int) -> dict[str, tuple[int, int, int]]:
        """(min, opt, max) of each length axis for a TensorRT optimisation profile."""
        raise NotImplementedError  # abstract

    # -- serving (serve/family_io.py turns these into Triton declarations) -----------------------
    def serving_lengths(self, dims: dict[str, int]) -> list[ServingTensor]:
        """The optional length inputs of a served request."""
        raise NotImplementedError  # abstract

    def lengths_from_serving(self, arrays: dict[str, np.ndarray]):
        """The `lengths` argument of Runtime.predict from a served request's tensors (None: none sent)."""
        raise NotImplementedError  # abstract

    # -- calibration (export/calibration.py) -----------------------------------------------------
    def calibration_present(self, sample: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
        """Mixed availability for the masked graph's calibration feeds, as it is served:
        m -> bool [T_m], every unit keeping at least one modality."""
        raise NotImplementedError  # abstract
