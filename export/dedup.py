"""Store every initializer of several ONNX graphs once, in one shared external-data file.

Graphs of one bundle share most weights (experts, fusion head). Each distinct tensor payload
(content-addressed by sha256) is written once to `weights.bin` beside the graphs, 64-byte
aligned, and every initializer that holds it points at its offset. Small tensors stay inline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import numpy_helper

INLINE_MAX_BYTES = 64  # shape constants and scalars stay inline; everything else is shared
ALIGN = 64


def deduplicate(graph_paths: list[Path], weights_name: str = "weights.bin") -> dict:
    """Rewrite the graphs in place to share `weights_name` (in their common folder)."""
    folder = graph_paths[0].parent
    if any(p.parent != folder for p in graph_paths):
        raise ValueError("graphs sharing one weights file must live in one folder")
    offsets: dict[str, tuple[int, int]] = {}
    logical = 0
    with (folder / weights_name).open("wb") as blob:
        for path in graph_paths:
            model = onnx.load(str(path), load_external_data=True)
            for node in model.graph.node:  # exporter stack traces: bytes nobody reads
                node.doc_string = ""
            for init in model.graph.initializer:
                raw = numpy_helper.to_array(init).tobytes()
                logical += len(raw)
                if len(raw) <= INLINE_MAX_BYTES:
                    continue
                key = hashlib.sha256(raw).hexdigest()
                if key not in offsets:
                    pad = (-blob.tell()) % ALIGN
                    blob.write(b"\0" * pad)
                    offsets[key] = (blob.tell(), len(raw))
                    blob.write(raw)
                offset, length = offsets[key]
                init.ClearField("raw_data")
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    init.ClearField(field)
                init.data_location = onnx.TensorProto.EXTERNAL
                del init.external_data[:]
                for k, v in (("location", weights_name), ("offset", str(offset)), ("length", str(length))):
                    entry = init.external_data.add()
                    entry.key, entry.value = k, v
            onnx.save(model, str(path))
        stored = blob.tell()
    return {"unique_tensors": len(offsets), "stored_bytes": stored, "logical_bytes": logical}
