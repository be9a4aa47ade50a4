"""anymodal.runtime — torch-free inference: patterns, bundle reader, backends, Runtime."""

from .conversation import Conversation, TurnPrediction
from .errors import (
                     AnymodalError,
                     BackendUnavailableError,
                     BundleError,
                     ConversationError,
                     InputError,
                     ModelError,
                     OverloadedError,
                     PatternError,
                     RequestError,
                     SchedulerClosedError,
                     StreamClosedError,
)
from .families import RuntimeFamily, get_family, register_family
from .patterns import ALL_PATTERNS, MODALITIES, parse_pattern
from .prediction import Prediction
from .requests import Request
from .runtime import Runtime

__all__ = ["ALL_PATTERNS", "MODALITIES", "AnymodalError", "BackendUnavailableError", "BundleError",
           "Conversation", "ConversationError", "InputError", "ModelError", "OverloadedError", "PatternError", "Prediction", "Request",
           "RequestError", "Runtime", "RuntimeFamily", "SchedulerClosedError", "StreamClosedError", "TurnPrediction", "get_family", "parse_pattern",
           "register_family"]
