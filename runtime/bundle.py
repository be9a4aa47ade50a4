"""Reading a bundle folder (docs/ARCHITECTURE.md §6): manifest, graph files, integrity checks.

    manifest.json
    graphs/<pattern>.onnx, graphs/masked.onnx, graphs/weights.bin        (fp32)
    graphs/<precision>/...                                              (other precisions)
The manifest is checked against the versioned JSON Schema on open (manifest_schema.py). Every
file's sha256 is in the manifest and is checked before the file is first used, and again before
any later use if the file's stat changed since (file_integrity.py): a changed file is refused.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from stat import S_ISREG

from .atomic_fs import previous_dir
from .errors import BundleError, InputError
from .file_integrity import bundle_file_errors, digest, file_state, sha256_file
from .manifest_schema import SCHEMA_VERSION, check_manifest, read_manifest
from .patterns import MODALITIES

MANIFEST = "manifest.json"
__all__ = ["Bundle", "MANIFEST", "SCHEMA_VERSION", "sha256_file"]


class Bundle:
    def __init__(self, path: str | Path, precision: str | None = None):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not self.path.is_dir():
            prev = previous_dir(self.path)
            kept = f"; an interrupted export kept the previous bundle at {prev}" if prev.is_dir() else ""
            raise BundleError(f"{self.path}: not a folder — not an anymodal bundle{kept}")
        self.manifest = read_manifest(mf)
        check_manifest(self.manifest, mf)
        self._root = self.path.resolve()
        variants = self.manifest["variants"]
        self.precision = precision or self.manifest.get("default_precision", "fp32")
        self.requested_precision = precision  # None: the bundle's default (backends may fall back)
        if self.precision not in variants:
            raise BundleError(f"{self.path}: no {self.precision} graphs (has {', '.join(variants)})")
        self.variant = variants[self.precision]
        self._verified: dict[str, tuple] = {}  # rel -> (path, state its sha256 was checked at) or ()
        self._graph_files: dict[str, tuple] = {}  # graph -> its (rel, path) pairs (recheck)
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
    def absent_lengths(self) -> dict[str, int]:
        """Sequence models: the length of the all-missing input that stands for an absent sensor."""
        lengths = self.model["config"].get("absent_lengths")
        if lengths is None:
            raise BundleError(f"{self.path / MANIFEST}: model/config/absent_lengths missing (a sequence "
                              "model needs the length that stands for an absent sensor)")
        return dict(zip(MODALITIES, lengths))

    @property
    def graphs(self) -> dict[str, dict]:
        return self.variant["graphs"]

    @property
    def step_graphs(self) -> dict[str, dict]:
        """Causal bundles: one step graph per pattern (streaming conversations), keyed by name."""
        return self.variant.get("step_graphs", {})

    def graph_info(self, graph: str) -> dict | None:
        """The manifest entry of a graph or step graph (None when the bundle has no such graph)."""
        return self.graphs.get(graph) or self.step_graphs.get(graph)

    @property
    def float_dtype(self) -> str:
        return self.variant.get("float_dtype", "float32")

    # -- files -----------------------------------------------------------------------------
    def check_file(self, rel: str) -> Path:
        """Path of a bundle file after its sha256 matched the manifest. Re-hashed only when the
        file's (device, inode, size, mtime, ctime) differs from when it was last verified."""
        known = self._verified.get(rel)  # lock-free fast path: one stat per call
        if known and file_state(known[0]) == known[1]:
            return known[0]
        path = self.path / rel
        with self._lock:
            entry = self.manifest["files"].get(rel)
            if entry is None:
                raise BundleError(f"{path}: not listed in the manifest")
            self._check_inside(path)
            size = file_state(path)[2]
            if size != entry["bytes"]:  # cheaper than the hash, and a clearer message
                self._verified[rel] = ()
                raise BundleError(f"{path}: {size} bytes, the manifest says {entry['bytes']} — the file "
                                  "is truncated, corrupted or was modified")
            actual, state = digest(path)
            if actual != entry["sha256"]:
                self._verified[rel] = ()  # matches no state: every later use re-checks, none serves it
                raise BundleError(f"{path}: sha256 mismatch (manifest {entry['sha256'][:16]}…, "
                                  f"file {actual[:16]}…) — the file is corrupted or was modified")
            self._verified[rel] = (path, state) if state else ()  # () when racy: re-hashed next use
            return path

    def _check_inside(self, path: Path) -> None:
        """The file, symlinks followed, lies inside the bundle folder."""
        with bundle_file_errors(path, "resolve"):
            real = Path(os.path.realpath(path, strict=True))
        if not real.is_relative_to(self._root):
            raise BundleError(f"{path}: resolves to {real}, outside the bundle {self._root}")

    def recheck(self, graph: str) -> None:
        """Before a graph runs again: its files that were verified are re-verified if their stat
        changed (a stat each; no hashing unless something changed). The request path: the
        graph's files are listed once, and an unchanged file costs one os.stat and a tuple
        compare; anything else (changed, missing, not a regular file) goes through check_file."""
        files = self._graph_files.get(graph)
        if files is None:
            files = self._graph_files[graph] = self._files_of(graph)
        verified = self._verified
        for rel, path in files:
            known = verified.get(rel)
            if known is None:  # never verified: not a file this backend loaded
                continue
            if known:
                try:
                    st = os.stat(path)
                except OSError:
                    st = None
                if st is not None and S_ISREG(st.st_mode) and \
                        (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == known[1]:
                    continue
            self.check_file(rel)  # re-hashed, or a BundleError naming what is wrong

    def _files_of(self, graph: str) -> tuple[tuple[str, str], ...]:
        """(rel, path) of a graph's files: the graph, its data files, its ORT-optimised copy's."""
        info = self.graph_info(graph)
        if info is None:
            return ()
        copy = self.variant.get("ort_graphs", {}).get("graphs", {}).get(graph) or {}
        rels = (info["file"], *info.get("data_files", ()), *copy.get("data_files", ()),
                *([copy["file"]] if copy else ()))
        return tuple((rel, str(self.path / rel)) for rel in dict.fromkeys(rels))

    def check_graph_io(self, graph: str, inputs: list[str], outputs: list[str], path: Path) -> None:
        """The loaded graph's own input/output names are the ones the manifest declares for it
        (a manifest edited to point a pattern at another graph file is caught here)."""
        info = self.graph_info(graph)
        want_in, want_out = [t["name"] for t in info["inputs"]], [t["name"] for t in info["outputs"]]
        if sorted(inputs) != sorted(want_in) or sorted(outputs) != sorted(want_out):
            raise BundleError(f"{path}: graph {graph!r} has inputs {inputs} and outputs {outputs}, the "
                              f"manifest declares {want_in} and {want_out}")

    def graph_path(self, graph: str) -> Path:
        """The ONNX file of a graph, with it and its external-data files verified."""
        info = self.graph_info(graph)
        if info is None:
            raise BundleError(f"{self.path}: no graph {graph!r} (has {', '.join([*self.graphs, *self.step_graphs])})")
        for rel in info.get("data_files", []):
            self.check_file(rel)
        return self.check_file(info["file"])

    def ort_graph_path(self, graph: str) -> Path:
        """The ORT-optimised copy of a graph (variant `ort_graphs`), verified like graph_path."""
        copies = self.variant.get("ort_graphs", {}).get("graphs", {})
        if graph not in copies:
            raise BundleError(f"{self.path}: no ORT-optimised copy of graph {graph!r} ({self.precision})")
        for rel in copies[graph].get("data_files", []):
            self.check_file(rel)
        return self.check_file(copies[graph]["file"])

    def nbytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest["files"].values())
