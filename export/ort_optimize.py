"""Offline graph rewriting with ONNX Runtime's own optimiser, done once at export time so that
opening a bundle does no rewriting.

* `fold_constants`: ORT's basic level only (constant folding, redundant-node elimination,
  standard-op fusions): the result is still a portable standard-op graph (TensorRT reads it).
  It folds what the tracer leaves as weight arithmetic, e.g. LayerNorm affine folded into the
  first block's concatenated Q/K/V weights, so each graph stores one weight per matmul.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _optimise(src: Path, dst: Path, level: str) -> Path:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.optimized_model_filepath = str(dst)
    opts.intra_op_num_threads = 1
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    return dst


def fold_constants(path: Path) -> Path:
    """Rewrite the ONNX file at `path` in place with ORT's basic (portable) optimisations."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        _optimise(path, Path(tmp), "ORT_ENABLE_BASIC")
        os.chmod(tmp, path.stat().st_mode & 0o777)  # mkstemp's 0o600 would override the umask's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
