"""One small base class for every inference backend (docs/ARCHITECTURE.md §7 and §12, after
Polygraphy's runners).

Lifecycle: construct (cheap) -> `session(graph)` loads lazily, once, thread-safely ->
`run(graph, feeds)` -> `close()`, after which `session`/`run` raise BackendClosedError (a
closed backend never re-creates sessions behind its caller). Subclasses implement
`_load_impl` / `_run_impl` and `available()`, importing their optional libraries lazily.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..errors import BackendClosedError


class Backend:
    name = "abstract"
    install_hint = ""
    # Memory over speed (set before the first session loads): ONNX Runtime then keeps no
    # prepacked copy of the weights per graph, which otherwise multiplies the memory by the
    # number of loaded graphs, at a small cost in speed (docs/ARCHITECTURE.md §7; figures from
    # rt-report footprint in docs/jetson.md).
    low_memory = False
    # CPU intra-op busy-waiting (ONNX Runtime's session.intra_op.allow_spinning; set before the
    # first session loads; GPU engines ignore it). Off by default: on shared cores spinning
    # workers starve the caller and burn CPU per request; on cores the caller owns it saves each
    # op's thread wake-up (docs/ARCHITECTURE.md §7; figures in docs/performance.md).
    spinning = False

    def __init__(self, bundle: Bundle, threads: int | None = None):
        self.bundle, self.threads = bundle, threads
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here, reason when not)."""
        raise NotImplementedError  # abstract

    def session(self, graph: str):
        session = self._sessions.get(graph)  # the request path: a loaded graph needs no lock
        if session is not None:
            return session
        with self._lock:
            if self._closed:  # never re-created behind the caller's back after close()
                raise BackendClosedError(f"{self.name}: used after close() (graph {graph!r}); open a new Runtime")
            if graph not in self._sessions:
                path = self.graph_file(graph)
                session = self._load_impl(path)
                self._check_io(graph, session, path)
                self._sessions[graph] = session
            return self._sessions[graph]

    def _check_io(self, graph: str, session, path: Path) -> None:
        """Backends that can list a loaded graph's inputs/outputs hold them to the manifest."""

    def serves(self, graph: str) -> bool:
        """Whether this backend has something to load for the graph (a step graph may have no
        TensorRT engine: a Conversation then re-scores the window instead)."""
        return self.bundle.graph_info(graph) is not None

    def graph_file(self, graph: str) -> Path:
        """The file this backend loads for a graph (ONNX here; engines for TensorRT)."""
        return self.bundle.graph_path(graph)

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{output name: array}. The arrays belong to the caller: no later call overwrites them
        (a backend that stages outputs in reused buffers returns copies), so a Prediction may
        keep views of them."""
        session = self.session(graph)
        self.bundle.recheck(graph)  # a bundle file changed since it was verified is never served
        return self._run_impl(session, feeds)

    def loaded(self) -> list[str]:
        return list(self._sessions)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._sessions.clear()

    def _load_impl(self, path: Path):
        raise NotImplementedError  # abstract

    def _run_impl(self, session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError  # abstract
