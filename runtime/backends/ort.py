"""ONNX Runtime backends: CPU everywhere, CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendUnavailableError, BundleError, InputError
from .base import Backend


def _ort():
    import onnxruntime

    return onnxruntime


# The oldest onnxruntime whose CPU provider runs the ORT-optimised graphs (com.microsoft
# MultiHeadAttention with a 2-D key padding mask): checked by running a bundle's copies under
# 1.18.0, the oldest release the package's `cpu` extra allows (docs/ARCHITECTURE.md §6).
ORT_GRAPHS_MIN_VERSION = "1.18.0"
GRAPH_CHOICES = ("auto", "ort", "portable")


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in v.split(".")[:3])


class OrtBackend(Backend):
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    serves_ort_graphs = False  # whether this provider may run a variant's ORT-optimised copies

    def __init__(self, bundle, threads: int | None = None, spinning: bool = False, graphs: str = "auto"):
        super().__init__(bundle, threads)
        self.spinning = spinning  # intra-op busy-waiting (Backend.spinning: why off by default)
        if graphs not in GRAPH_CHOICES:
            raise InputError(f"graphs={graphs!r}; choose {', '.join(GRAPH_CHOICES)}")
        # auto: the bundle's ORT-optimised copy where it has one and this onnxruntime runs it,
        # else the portable graph; ort: the copy or a BundleError; portable: never the copy
        self.graphs = graphs
        self._calls: dict[int, tuple] = {}  # id(session) -> (its run call, its output names)

    def graph_flavour(self, graph: str) -> str:
        """Which file this backend serves for `graph`: "ort" (the ORT-optimised copy) or "portable"."""
        info = self.bundle.variant.get("ort_graphs")
        if graph not in self.bundle.graphs:  # step graphs (streaming) have no ORT-optimised copy
            return "portable"
        if self.graphs == "portable" or not self.serves_ort_graphs:
            if self.graphs == "ort":
                raise BackendUnavailableError(f"{self.name}: runs the portable graphs only (ORT-optimised "
                                              "copies are served by ort-cpu)")
            return "portable"
        why = None
        if info is None or graph not in info["graphs"]:
            why = f"{self.bundle.path}: no ORT-optimised copy of graph {graph!r} ({self.bundle.precision})"
        elif _version_tuple(_ort().__version__) < _version_tuple(info["min_onnxruntime"]):
            why = (f"{self.bundle.path}: the ORT-optimised graphs need onnxruntime >= {info['min_onnxruntime']}, "
                   f"this is {_ort().__version__} (upgrade it, or serve the portable graphs)")
        if why and self.graphs == "ort":
            raise BundleError(why)
        return "portable" if why else "ort"

    def graph_file(self, graph: str) -> Path:
        if self.graph_flavour(graph) == "ort":
            return self.bundle.ort_graph_path(graph)
        return self.bundle.graph_path(graph)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            ort = _ort()
        except ImportError:
            return False, f"onnxruntime is not installed ({cls.install_hint})"
        missing = [p for p in cls.providers if p not in ort.get_available_providers()]
        if missing:
            return False, f"onnxruntime here lacks {', '.join(missing)} ({cls.install_hint})"
        return True, ""

    def session_options(self):
        ort = _ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1  # sequential executor: the graphs are one chain of ops
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        if self.low_memory:  # weights stay in the shared file mapping, no per-session packed copy
            opts.add_session_config_entry("session.disable_prepacking", "1")
        return opts

    def _load_impl(self, path: Path):
        ort = _ort()
        try:
            return ort.InferenceSession(str(path), self.session_options(), providers=list(self.providers))
        except Exception as exc:  # ORT raises its own exception types; name the file
            raise BundleError(f"{path}: onnxruntime could not load the graph ({exc})") from exc

    def _check_io(self, graph, session, path):
        self.bundle.check_graph_io(graph, [i.name for i in session.get_inputs()],
                                   [o.name for o in session.get_outputs()], path)

    def close(self) -> None:
        super().close()
        self._calls.clear()  # they hold the sessions' bindings: let the sessions go

    def _run_impl(self, session, feeds):
        # the request path: output names looked up once per session; ORT returns fresh
        # contiguous numpy arrays, so nothing is copied or converted here. Not IO binding:
        # binding preallocated outputs was no faster on CPU (rt-bench ort-iobinding row)
        call = self._calls.get(id(session))
        if call is None:
            call = self._calls[id(session)] = (session_run(session), [o.name for o in session.get_outputs()])
        run, names = call
        return dict(zip(names, run(names, feeds, None)))


def session_run(session):
    """The run call of an InferenceSession: its compiled binding's `run` where it has one.
    InferenceSession.run is a Python wrapper that re-checks the feed names against the graph's
    inputs and looks for OrtValues and WebGPU graph capture before calling that binding with the
    same arguments; the Runtime's feeds are built from the manifest, whose names were held to
    the loaded graph's (Bundle.check_graph_io), and are numpy arrays, so those checks cannot
    fail here, and skipping them is measurable right after a graph run (docs/performance.md).
    ORT still refuses a missing or mistyped input itself. Falls back to the wrapper when a
    future onnxruntime has no `_sess` binding with that call."""
    binding = getattr(session, "_sess", None)
    run = getattr(binding, "run", None)
    return run if callable(run) else session.run


class OrtCpuBackend(OrtBackend):
    name = "ort-cpu"
    serves_ort_graphs = True
    install_hint = "pip install 'anymodal[cpu]'"


class OrtCudaBackend(OrtBackend):
    """Usable only when a session really gets the CUDA provider: ORT lists it whenever
    onnxruntime-gpu is installed, but silently falls back to the CPU when the CUDA/cuDNN
    libraries cannot load. Sessions have fallback disabled and are checked at load."""

    name = "ort-cuda"
    install_hint = "pip install 'anymodal[gpu]' on a machine with CUDA"
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        return cuda_provider_works()

    @classmethod
    def provider_list(cls):
        from .trt_keys import cuda_device_index

        return [("CUDAExecutionProvider", {"device_id": cuda_device_index()}), "CPUExecutionProvider"]

    def _load_impl(self, path: Path):
        ort = _ort()
        try:
            sess = ort.InferenceSession(str(path), self.session_options(), providers=self.provider_list())
        except Exception as exc:  # ORT raises its own exception types; name the file
            raise BundleError(f"{path}: onnxruntime could not load the graph ({exc})") from exc
        if sess.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendUnavailableError(f"{path}: onnxruntime fell back to {sess.get_providers()[0]} "
                                          "(CUDA/cuDNN libraries could not be loaded)")
        sess.disable_fallback()
        return sess


_probe: dict[int, tuple[bool, str]] = {}


def cuda_provider_works() -> tuple[bool, str]:
    """Open a one-node session on the CUDA provider and see whether ORT kept it (cached per device)."""
    from .trt_keys import cuda_device_index

    device = cuda_device_index()
    if device not in _probe:
        ort = _ort()
        try:
            sess = ort.InferenceSession(probe_model(), providers=OrtCudaBackend.provider_list())
            first = sess.get_providers()[0]
            _probe[device] = (True, "") if first == "CUDAExecutionProvider" else (
                False, f"CUDAExecutionProvider is listed but a session fell back to {first} "
                       "(CUDA or cuDNN libraries could not be loaded)")
        except Exception as exc:  # ORT raises its own exception types
            _probe[device] = (False, f"CUDAExecutionProvider could not start ({exc})")
    return _probe[device]


def _field(num: int, payload) -> bytes:
    """One protobuf field: varint (int) or length-delimited (bytes/str)."""
    def varint(v: int) -> bytes:
        out = b""
        while True:
            b, v = v & 0x7F, v >> 7
            out += bytes([b | (0x80 if v else 0)])
            if not v:
                return out

    if isinstance(payload, int):
        return varint(num << 3) + varint(payload)
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def probe_model() -> bytes:
    """A serialized ONNX model y = Identity(x), x float [1] (written by hand: the runtime does
    not depend on the onnx package)."""
    tensor_type = _field(1, _field(1, 1) + _field(2, _field(1, _field(1, 1))))  # float, shape [1]
    value = lambda name: _field(1, name) + _field(2, tensor_type)  # noqa: E731
    node = _field(1, "x") + _field(2, "y") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "probe") + _field(11, value("x")) + _field(12, value("y"))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))


class OrtTensorRTBackend(OrtBackend):
    """ONNX Runtime's TensorRT execution provider (by name only: it builds its own engines on a
    graph's first session). Engines are cached in the bundle's engines/ folder, fp16 enabled for
    an fp16 variant; a session that did not get the TensorRT provider (ORT drops a provider
    whose libraries cannot load) is refused, as for ort-cuda."""

    name = "ort-trt"
    install_hint = "onnxruntime-gpu built with TensorRT, on a machine with CUDA and TensorRT"
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    def cache_dir(self) -> Path:
        return self.bundle.path / "engines" / f"ort-trt-{self.bundle.precision}"

    def provider_list(self):
        from .trt_keys import cuda_device_index

        device = cuda_device_index()
        trt = {"device_id": device, "trt_fp16_enable": self.bundle.precision == "fp16",
               "trt_engine_cache_enable": True, "trt_engine_cache_path": str(self.cache_dir())}
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", {"device_id": device}),
                "CPUExecutionProvider"]

    def _load_impl(self, path: Path):
        ort = _ort()
        try:
            self.cache_dir().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(f"ort-trt: cannot create its engine cache {self.cache_dir()} ({exc})") from exc
        try:
            sess = ort.InferenceSession(str(path), self.session_options(), providers=self.provider_list())
        except Exception as exc:  # ORT raises its own exception types; name the file
            raise BundleError(f"{path}: onnxruntime could not load the graph ({exc})") from exc
        if sess.get_providers()[0] != "TensorrtExecutionProvider":
            raise BackendUnavailableError(f"{path}: onnxruntime fell back to {sess.get_providers()[0]} "
                                          "(the TensorRT libraries could not be loaded)")
        sess.disable_fallback()
        return sess
