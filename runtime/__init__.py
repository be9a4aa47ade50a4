"""anymodal.runtime — torch-free inference: patterns, bundle reader, backends, Runtime."""

from .errors import AnymodalError, BackendUnavailableError, BundleError, InputError, PatternError
from .patterns import ALL_PATTERNS, MODALITIES, parse_pattern
from .runtime import Prediction, Runtime

__all__ = ["ALL_PATTERNS", "MODALITIES", "AnymodalError", "BackendUnavailableError", "BundleError",
           "InputError", "PatternError", "Prediction", "Runtime", "parse_pattern"]
