"""The compared variants of one condition: each is a zero-argument callable serving the same
request, or a reason why it cannot run here (reported, never silently dropped)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from anymodal.runtime.backends import BACKENDS
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.runtime.requests import MASKED, build_request

# ort = the graph ort-cpu serves (the ORT-optimised copy where the bundle has one);
# ort-portable = the portable standard-op graph on the same backend, for comparison
ALL_VARIANTS = ("reference-eager", "reference-compiled", "reference-int8", "torch", "ort-masked", "ort", "ort-portable", "ort-spin",
                "ort-iobinding", "ort-int8", "runtime", "session-run", "ort-cuda", "tensorrt")


def make_request(bundle: Bundle, pattern: str, batch: int, seq: int | None, seed: int = 0):
    """Random features of the present modalities, [batch, T_m, dim] each, at the lengths the
    family's input kind benchmarks (the conversation length `seq`, or the model's sequence lengths)."""
    rng = np.random.default_rng(seed)
    lens = bundle.family.inputs.example_lengths(bundle.model["config"], seq)
    return {MODALITY_NAMES[m]: rng.standard_normal((batch, lens[m], bundle.dims[m])).astype(np.float32)
            for m in pattern}


def _feeds(bundle: Bundle, req: dict, float_dtype: str, graph: str | None = None):
    """(graph, feeds) through the runtime's request pipeline; graph None = the one it picks."""
    family = bundle.family
    r = build_request(family.inputs, bundle.dims, float_dtype,
                      {m: req.get(MODALITY_NAMES[m]) for m in MODALITIES})
    graph = graph or r.graph
    return graph, family.feeds(r, graph, bundle.dims, float_dtype, bundle.model["config"])


def specialised_feeds(bundle: Bundle, req: dict, float_dtype: str):
    """(graph, feeds) of the graph the runtime picks for this request."""
    return _feeds(bundle, req, float_dtype)


def masked_feeds(bundle: Bundle, req: dict) -> dict:
    """All inputs + masks, absent modalities as the family feeds them to the masked graph
    (the paper-code way)."""
    return _feeds(bundle, req, bundle.float_dtype, MASKED)[1]


def _torch_model_and_args(run: Path | None, bundle: Bundle, req: dict, threads: int):
    """(model, masked-graph-order torch inputs) or (None, reason it cannot run here)."""
    if run is None or not (Path(run) / "model.safetensors").is_file():
        return None, "no PyTorch checkpoint for this bundle (pass --run RUN)"
    try:
        import torch

        from anymodal.train.checkpoint import load_run
    except ImportError:
        return None, "PyTorch is not installed (pip install 'anymodal[train]')"
    torch.set_num_threads(threads)
    model = _load_model(str(Path(run).resolve()), load_run)
    # the masked graph's input order; copies: a request's masks may be the runtime's shared
    # read-only arrays, which torch.from_numpy would wrap with a warning
    args = [torch.from_numpy(v.copy()) for v in masked_feeds(bundle, req).values()]
    return model, args


@functools.lru_cache(maxsize=4)  # one model per run folder for all conditions of a bench run
def _load_model(run: str, load_run):
    return load_run(run)[0].eval()


def torch_variant(run: Path | None, bundle: Bundle, req: dict, threads: int):
    """PyTorch eager: our full model with masks (all modalities encoded)."""
    model, args = _torch_model_and_args(run, bundle, req, threads)
    if model is None:
        return None, args
    import torch

    def call():
        with torch.inference_mode():
            return model(*args)

    return call, None


def reference_variant(name: str, run: Path | None, bundle: Bundle, req: dict, threads: int):
    """What the authors' code computes (train/models/momke_reference.py) on this bundle's weights: eager,
    under torch.compile (compiled here, before timing) or with torch's dynamic int8 quantisation
    of every nn.Linear."""
    try:
        from anymodal.train.families import get_train_family
    except ImportError:
        return None, "PyTorch is not installed (pip install 'anymodal[train]')"
    reference = get_train_family(bundle.model["kind"]).reference_callable
    if reference is None:
        return None, f"no implementation of the authors' code for {bundle.model['kind']} (none is public)"
    model, args = _torch_model_and_args(run, bundle, req, threads)
    if model is None:
        return None, args
    try:
        return reference(model, args, name.removeprefix("reference-")), None
    except Exception as exc:  # torch.compile needs a C++ compiler, int8 a quantised engine; say why
        return None, f"{name} failed here ({type(exc).__name__}: {str(exc)[:200]})"


def _runtime(bundle: Bundle, req: dict, threads: int, spinning: bool, shared: dict):
    """The Runtime of the `runtime` row, shared with the `session-run` row (one per condition)."""
    if "runtime" not in shared:
        from anymodal.runtime.runtime import Runtime

        rt = Runtime(bundle.path, backend="ort-cpu", precision=bundle.precision, threads=threads,
                     spinning=spinning)
        rt.predict(**req)  # load the graph outside the timed region
        shared["runtime"] = rt
    return shared["runtime"]


def runtime_variant(rt, req: dict):
    """The whole request path: Runtime.predict (input checks, graph choice, softmax, labels)."""
    return (lambda: rt.predict(**req)), None


def session_run_variant(rt, bundle: Bundle, req: dict):
    """Raw session.run on the very session the `runtime` row uses, feeds built beforehand: the
    baseline of Runtime.predict's overhead (same session, thread pool and memory)."""
    graph, feeds = specialised_feeds(bundle, req, bundle.float_dtype)
    session = rt.backend.session(graph)
    names = [o.name for o in session.get_outputs()]
    return (lambda: session.run(names, feeds)), None


def iobinding_variant(bundle: Bundle, req: dict, threads: int):
    """The specialised graph (a session of its own, like `ort`) run through ORT IO binding:
    outputs preallocated and bound once for this shape, inputs bound per call (what a Runtime
    would do to avoid allocating outputs)."""
    ok, why = BACKENDS["ort-cpu"].available()
    if not ok:
        return None, why
    backend = BACKENDS["ort-cpu"](bundle, threads=threads)
    graph, feeds = specialised_feeds(bundle, req, bundle.float_dtype)
    return iobinding_call(backend.session(graph), feeds), None


def iobinding_call(session, feeds: dict):
    """A zero-argument call running `session` on `feeds` through an IO binding whose outputs
    are preallocated once ([name -> array], overwritten by every call)."""
    names = [o.name for o in session.get_outputs()]
    outputs = {n: np.empty_like(x) for n, x in zip(names, session.run(names, feeds))}  # this shape
    binding = session.io_binding()
    for name, buf in outputs.items():
        binding.bind_output(name, "cpu", 0, buf.dtype, buf.shape, buf.ctypes.data)

    def call():
        for name, x in feeds.items():
            binding.bind_cpu_input(name, x)
        session.run_with_iobinding(binding)
        return outputs

    return call


def ort_variant(name: str, bundle: Bundle, pattern: str, req: dict, threads: int):
    backend_name = "ort-cuda" if name.startswith("ort-cuda") else "ort-cpu"
    ok, why = BACKENDS[backend_name].available()
    if not ok:
        return None, why
    if name == "ort-int8":
        if "int8" not in bundle.manifest["variants"]:
            return None, "the bundle has no int8 graphs (rt-export --precision fp32,int8)"
        bundle = Bundle(bundle.path, "int8")
    backend = BACKENDS[backend_name](bundle, threads=threads, spinning=name == "ort-spin",
                                     graphs="portable" if name == "ort-portable" else "auto")
    if name.endswith("masked"):
        graph, feeds = "masked", masked_feeds(bundle, req)
    else:
        graph, feeds = specialised_feeds(bundle, req, bundle.float_dtype)  # the graph of `pattern`
    backend.session(graph)  # load outside the timed region
    return (lambda: backend.run(graph, feeds)), None


def trt_variant(bundle: Bundle, pattern: str, req: dict):
    cls = BACKENDS["tensorrt"]
    ok, why = cls.available()
    if not ok:
        return None, why
    from anymodal.runtime.errors import BundleError

    try:
        backend = cls(bundle)
    except BundleError as exc:
        return None, str(exc)
    graph, feeds = specialised_feeds(bundle, req, "float32")
    backend.session(graph)
    return (lambda: backend.run(graph, feeds)), None


def build_variants(names, bundle: Bundle, run: Path | None, pattern: str, batch: int, seq: int | None,
                   threads: int, spinning: bool = False):
    """({name: callable}, {name: reason absent}). spinning: the `runtime` row's session option."""
    req = make_request(bundle, pattern, batch, seq)
    ready, absent, shared = {}, {}, {}
    for name in names:
        if name == "torch":
            fn, why = torch_variant(run, bundle, req, threads)
        elif name.startswith("reference-"):
            fn, why = reference_variant(name, run, bundle, req, threads)
        elif name == "runtime":
            fn, why = runtime_variant(_runtime(bundle, req, threads, spinning, shared), req)
        elif name == "session-run":
            fn, why = session_run_variant(_runtime(bundle, req, threads, spinning, shared), bundle, req)
        elif name == "ort-iobinding":
            fn, why = iobinding_variant(bundle, req, threads)
        elif name in ("ort", "ort-portable", "ort-spin", "ort-int8", "ort-masked", "ort-cuda"):
            fn, why = ort_variant(name, bundle, pattern, req, threads)
        elif name == "tensorrt":
            fn, why = trt_variant(bundle, pattern, req)
        else:
            from anymodal.runtime.errors import InputError

            raise InputError(f"unknown variant {name!r}; choose from {', '.join(ALL_VARIANTS)} or all")
        if fn is None:
            absent[name] = why
        else:
            ready[name] = fn
    return ready, absent
