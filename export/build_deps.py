"""What rt-build needs beyond TensorRT and pycuda, checked before anything is built: JetPack
ships neither onnx nor onnxruntime (docs/jetson.md installs them)."""

from __future__ import annotations

import importlib.util

from anymodal.runtime.errors import MissingDependencyError

# onnxruntime: every engine is checked against it; onnx + onnxruntime: INT8 calibration (QDQ)
NEEDS = {"fp32": ("onnxruntime",), "fp16": ("onnxruntime",), "int8": ("onnx", "onnxruntime")}


def require_build_libs(precision: str) -> None:
    missing = [m for m in NEEDS[precision] if importlib.util.find_spec(m) is None]
    if missing:
        why = ("calibrates INT8 and checks the engines" if precision == "int8"
               else "checks every engine against the ONNX graph")
        raise MissingDependencyError(f"rt-build --precision {precision} {why} with {' and '.join(missing)}, "
                                     f"not installed: pip install {' '.join(missing)} (on a Jetson too: "
                                     "docs/jetson.md)")
