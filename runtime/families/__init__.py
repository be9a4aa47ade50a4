"""Model families, runtime side (numpy only). Built-in: MoMKE (utterances), DERL (sequences).
A new family subclasses RuntimeFamily and calls register_family() once; modules named in
$ANYMODAL_FAMILIES are imported on the first look-up, so every process (rt-bench workers,
torchrun ranks, Triton's Python backend) knows their families (docs/ARCHITECTURE.md §4a)."""

from .base import FUSION, Decoded, RuntimeFamily, head_outputs, softmax, step_graph_name
from .derl import DERLRuntime
from .input_kind import InputKind, ServingTensor, TensorSpec
from .momke import MoMKERuntime
from .registry import family_names, get_family, import_family_modules, register_family
from .sequences import SEQUENCES, SequenceInputs
from .utterances import UTTERANCES, UtteranceInputs

register_family(MoMKERuntime())
register_family(DERLRuntime())
DEFAULT_FAMILY = MoMKERuntime.name  # what rt-bench builds when no bundle and no --model is given
INPUT_KINDS = {k.name: k for k in (UTTERANCES, SEQUENCES)}

__all__ = ["DEFAULT_FAMILY", "FUSION", "INPUT_KINDS", "SEQUENCES", "UTTERANCES", "Decoded", "InputKind",
           "RuntimeFamily", "SequenceInputs", "ServingTensor", "TensorSpec", "UtteranceInputs", "family_names",
           "get_family", "head_outputs", "import_family_modules", "register_family", "softmax",
           "step_graph_name"]
