"""The compared variants of one condition: each is a zero-argument callable serving the same
request, or a reason why it cannot run here (reported, never silently dropped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anymodal.runtime.backends import BACKENDS
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.inputs import build_request
from anymodal.runtime.patterns import MODALITIES, MODALITY_NAMES

ALL_VARIANTS = ("torch", "ort-masked", "ort", "ort-cuda", "tensorrt")


def make_request(bundle: Bundle, pattern: str, batch: int, seq: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {MODALITY_NAMES[m]: rng.standard_normal((batch, seq, bundle.dims[m])).astype(np.float32)
            for m in pattern}


def _masked_feeds(bundle: Bundle, req: dict) -> dict:
    """All inputs + masks, absent modalities zero: the masked graph / paper-code way."""
    B, L = next(iter(req.values())).shape[:2]
    feeds = {MODALITY_NAMES[m]: req.get(MODALITY_NAMES[m], np.zeros((B, L, bundle.dims[m]), np.float32))
             .astype(bundle.float_dtype) for m in MODALITIES}
    feeds["mask"] = np.ones((B, L), bool)
    feeds["avail"] = np.broadcast_to(np.array([MODALITY_NAMES[m] in req for m in MODALITIES]),
                                     (B, L, 3)).copy()
    return feeds


def torch_variant(run: Path | None, bundle: Bundle, req: dict, threads: int):
    """PyTorch eager reference: the full model with masks, as the paper's code runs it."""
    if run is None or not (Path(run) / "model.safetensors").is_file():
        return None, "no PyTorch checkpoint for this bundle (pass --run RUN)"
    try:
        import torch
        from anymodal.train.checkpoint import load_run
    except ImportError:
        return None, "PyTorch is not installed (pip install 'anymodal[train]')"
    torch.set_num_threads(threads)
    model, _ = load_run(run)
    feeds = _masked_feeds(bundle, req)
    args = [torch.from_numpy(feeds[MODALITY_NAMES[m]]) for m in MODALITIES]
    args += [torch.from_numpy(feeds["mask"]), torch.from_numpy(feeds["avail"])]

    def call():
        with torch.inference_mode():
            return model(*args)

    return call, None


def ort_variant(name: str, bundle: Bundle, pattern: str, req: dict, threads: int):
    backend_name = "ort-cuda" if name.startswith("ort-cuda") else "ort-cpu"
    ok, why = BACKENDS[backend_name].available()
    if not ok:
        return None, why
    backend = BACKENDS[backend_name](bundle, threads=threads)
    if name.endswith("masked"):
        graph, feeds = "masked", _masked_feeds(bundle, req)
    else:
        r = build_request(bundle.dims, bundle.float_dtype, **req)
        graph, feeds = r.graph, r.feeds  # the specialised graph of `pattern`
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
    r = build_request(bundle.dims, "float32", **req)
    backend.session(r.graph)
    return (lambda: backend.run(r.graph, r.feeds)), None


def build_variants(names, bundle: Bundle, run: Path | None, pattern: str, batch: int, seq: int,
                   threads: int):
    """({name: callable}, {name: reason absent})."""
    req = make_request(bundle, pattern, batch, seq)
    ready, absent = {}, {}
    for name in names:
        if name == "torch":
            fn, why = torch_variant(run, bundle, req, threads)
        elif name in ("ort", "ort-masked", "ort-cuda"):
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
