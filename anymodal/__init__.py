"""anymodal: an edge runtime for multimodal emotion/sentiment models with missing modalities."""

__version__ = "0.1.0"

from anymodal.runtime import (  # noqa: E402
    AnymodalError,
    BundleError,
    InputError,
    ModelError,
    Prediction,
    RequestError,
    Runtime,
    parse_pattern,
)

__all__ = ["__version__", "AnymodalError", "BundleError", "InputError", "ModelError", "Prediction",
           "RequestError", "Runtime", "parse_pattern"]
