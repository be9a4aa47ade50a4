"""Model families, runtime side (numpy only). Built-in: MoMKE (utterances), DERL (sequences).
A new family subclasses RuntimeFamily and calls register_family() once (docs/ARCHITECTURE.md §4a,
"Add a family")."""

from .base import Decoded, RuntimeFamily, head_outputs, softmax, step_graph_name
from .derl import DERLRuntime
from .inputs import INPUT_KINDS, SequenceInputs, TensorSpec, UtteranceInputs
from .momke import MoMKERuntime
from .registry import family_names, get_family, register_family

register_family(MoMKERuntime())
register_family(DERLRuntime())
DEFAULT_FAMILY = MoMKERuntime.name  # what rt-bench builds when no bundle and no --model is given

__all__ = ["DEFAULT_FAMILY", "INPUT_KINDS", "Decoded", "RuntimeFamily", "SequenceInputs", "TensorSpec",
           "UtteranceInputs", "family_names", "get_family", "head_outputs", "register_family", "softmax",
           "step_graph_name"]
