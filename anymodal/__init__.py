"""anymodal: an edge runtime for multimodal emotion/sentiment models with missing modalities."""

__version__ = "0.1.0"

from anymodal.runtime import BundleError, InputError, Prediction, Runtime, parse_pattern  # noqa: E402

__all__ = ["__version__", "BundleError", "InputError", "Prediction", "Runtime", "parse_pattern"]
