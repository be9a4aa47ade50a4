"""The compared variants of one condition: each is a zero-argument callable serving the same
request, or a reason why it cannot run here (reported, never silently dropped)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from anymodal.runtime.backends import BACKENDS
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.inputs import build_request
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES
from anymodal.runtime.sequence_inputs import build_sequence_request, masked_sequence_feeds

ALL_VARIANTS = ("reference-eager", "reference-compiled", "torch", "ort-masked", "ort", "ort-spin",
                "ort-int8", "runtime", "ort-cuda", "tensorrt")


def make_request(bundle: Bundle, pattern: str, batch: int, seq: int | None, seed: int = 0):
    """Random features of the present modalities: [batch, seq, dim] per utterance-level model;
    sequence models (DERL) get each modality at its dataset length (absent_lengths)."""
    rng = np.random.default_rng(seed)
    lens = bundle.absent_lengths if bundle.sequence_model else {m: seq for m in MODALITIES}
    return {MODALITY_NAMES[m]: rng.standard_normal((batch, lens[m], bundle.dims[m])).astype(np.float32)
            for m in pattern}


def specialised_feeds(bundle: Bundle, req: dict, float_dtype: str):
    """(graph, feeds) of the graph the runtime picks for this request."""
    if bundle.sequence_model:
        r = build_sequence_request(bundle.dims, bundle.absent_lengths, float_dtype, **req)
    else:
        r = build_request(bundle.dims, float_dtype, **req)
    return r.graph, r.feeds


def _masked_sequence_feeds(bundle: Bundle, req: dict) -> dict:
    """DERL: all inputs, absent sensors as their all-missing input (what the paper code runs)."""
    feats = {m: req[MODALITY_NAMES[m]].astype(bundle.float_dtype) for m in MODALITIES if MODALITY_NAMES[m] in req}
    masks = {m: np.ones(f.shape[:2], bool) for m, f in feats.items()}
    return masked_sequence_feeds(bundle.dims, bundle.absent_lengths, bundle.float_dtype, feats, masks, masks)


def _masked_feeds(bundle: Bundle, req: dict) -> dict:
    """All inputs + masks, absent modalities zero: the masked graph / paper-code way."""
    if bundle.sequence_model:
        return _masked_sequence_feeds(bundle, req)
    B, L = next(iter(req.values())).shape[:2]
    feeds = {MODALITY_NAMES[m]: req.get(MODALITY_NAMES[m], np.zeros((B, L, bundle.dims[m]), np.float32))
             .astype(bundle.float_dtype) for m in MODALITIES}
    feeds["mask"] = np.ones((B, L), bool)
    feeds["avail"] = np.broadcast_to(np.array([MODALITY_NAMES[m] in req for m in MODALITIES]),
                                     (B, L, 3)).copy()
    return feeds


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
    args = [torch.from_numpy(v) for v in _masked_feeds(bundle, req).values()]  # the masked graph's input order
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
    """What the authors' code computes (bench/reference.py) on this bundle's weights, eager or
    under torch.compile (compiled here, before timing)."""
    if bundle.sequence_model:
        return None, "the authors' reference exists for MoMKE only"
    model, args = _torch_model_and_args(run, bundle, req, threads)
    if model is None:
        return None, args
    from .reference import reference_callable

    try:
        return reference_callable(model, args, compiled=name.endswith("compiled")), None
    except Exception as exc:  # torch.compile needs a C++ compiler; say why it is absent
        return None, f"torch.compile failed here ({type(exc).__name__}: {str(exc)[:200]})"


def runtime_variant(bundle: Bundle, req: dict, threads: int):
    """The whole request path: Runtime.predict (input checks, graph choice, softmax, labels)."""
    from anymodal.runtime.runtime import Runtime

    rt = Runtime(bundle.path, backend="ort-cpu", precision=bundle.precision, threads=threads)
    rt.predict(**req)  # load the graph outside the timed region
    return (lambda: rt.predict(**req)), None


def ort_variant(name: str, bundle: Bundle, pattern: str, req: dict, threads: int):
    backend_name = "ort-cuda" if name.startswith("ort-cuda") else "ort-cpu"
    ok, why = BACKENDS[backend_name].available()
    if not ok:
        return None, why
    if name == "ort-int8":
        if "int8" not in bundle.manifest["variants"]:
            return None, "the bundle has no int8 graphs (rt-export --precision fp32,int8)"
        bundle = Bundle(bundle.path, "int8")
    backend = BACKENDS[backend_name](bundle, threads=threads, spinning=name == "ort-spin")
    if name.endswith("masked"):
        graph, feeds = "masked", _masked_feeds(bundle, req)
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
                   threads: int):
    """({name: callable}, {name: reason absent})."""
    req = make_request(bundle, pattern, batch, seq)
    ready, absent = {}, {}
    for name in names:
        if name == "torch":
            fn, why = torch_variant(run, bundle, req, threads)
        elif name.startswith("reference-"):
            fn, why = reference_variant(name, run, bundle, req, threads)
        elif name == "runtime":
            fn, why = runtime_variant(bundle, req, threads)
        elif name in ("ort", "ort-spin", "ort-int8", "ort-masked", "ort-cuda"):
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
