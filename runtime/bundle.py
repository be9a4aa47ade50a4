"""Reading a bundle folder (DESIGN §6): manifest, graph files, integrity checks.

    manifest.json
    graphs/<pattern>.onnx, graphs/masked.onnx, graphs/weights.bin        (fp32)
    graphs/<precision>/...                                              (other precisions)
Every file's sha256 is in the manifest and is checked before the file is first used.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from .errors import BundleError, InputError
from .patterns import MODALITIES

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Bundle:
    def __init__(self, path: str | Path, precision: str | None = None):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.is_file():
            raise BundleError(f"{mf}: missing — {self.path} is not an anymodal bundle")
        try:
            self.manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{mf}: not valid JSON ({exc})") from exc
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{mf}: schema_version {version!r}, this runtime reads {SCHEMA_VERSION}")
        for key in ("model", "inputs", "variants", "files"):
            if key not in self.manifest:
                raise BundleError(f"{mf}: missing key {key!r}")
        variants = self.manifest["variants"]
        self.precision = precision or self.manifest.get("default_precision", "fp32")
        if self.precision not in variants:
            raise BundleError(f"{self.path}: no {self.precision} graphs (has {', '.join(variants)})")
        self.variant = variants[self.precision]
        self._verified: set[str] = set()
        self._lock = threading.Lock()

    # -- model facts ---------------------------------------------------------------------
    @property
    def model(self) -> dict:
        return self.manifest["model"]

    @property
    def task(self) -> str:
        return self.model["task"]

    @property
    def labels(self) -> list[str]:
        return list(self.model.get("labels", []))

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(self.manifest["inputs"][m]["dim"]) for m in MODALITIES}

    @property
    def family(self):
        """The model family's runtime half, from the registry (runtime/families)."""
        from .families import get_family

        try:
            return get_family(self.model["kind"])
        except InputError as exc:
            raise BundleError(f"{self.path / MANIFEST}: {exc}") from None

    @property
    def sequence_model(self) -> bool:
        """Sequence-level input kind: one output per sample, each modality its own length."""
        from .requests import SEQUENCES

        return self.family.inputs.name == SEQUENCES

    @property
    def absent_lengths(self) -> dict[str, int]:
        """Sequence models: the length of the all-missing input that stands for an absent sensor."""
        return dict(zip(MODALITIES, self.model["config"]["absent_lengths"]))

    @property
    def graphs(self) -> dict[str, dict]:
        return self.variant["graphs"]

    @property
    def float_dtype(self) -> str:
        return self.variant.get("float_dtype", "float32")

    # -- files -----------------------------------------------------------------------------
    def check_file(self, rel: str) -> Path:
        """Path of a bundle file after its sha256 matched the manifest (checked once)."""
        path = self.path / rel
        with self._lock:
            if rel in self._verified:
                return path
            entry = self.manifest["files"].get(rel)
            if entry is None:
                raise BundleError(f"{path}: not listed in the manifest")
            if not path.is_file():
                raise BundleError(f"{path}: missing from the bundle")
            actual = sha256_file(path)
            if actual != entry["sha256"]:
                raise BundleError(f"{path}: sha256 mismatch (manifest {entry['sha256'][:16]}…, "
                                  f"file {actual[:16]}…) — the file is corrupted or was modified")
            self._verified.add(rel)
            return path

    def graph_path(self, graph: str) -> Path:
        """The ONNX file of a graph, with it and its external-data files verified."""
        if graph not in self.graphs:
            raise BundleError(f"{self.path}: no graph {graph!r} (has {', '.join(self.graphs)})")
        info = self.graphs[graph]
        for rel in info.get("data_files", []):
            self.check_file(rel)
        return self.check_file(info["file"])

    def nbytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest["files"].values())
