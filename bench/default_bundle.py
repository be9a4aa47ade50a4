"""The default benchmark bundles, random weights (latency does not depend on training):
paper-sized MoMKE (IEMOCAP dims 512/1024/1024, d=256, Q=4, 2 heads) and paper-sized DERL
(MOSI preset: d=128, bottleneck 4, 1 private + 3 shared experts, sequences 375x5/50x768/500x20).
Built once and cached, with the run folder beside the bundle so the PyTorch reference uses
the very same weights."""

from __future__ import annotations

import os
from pathlib import Path

from anymodal import __version__

PAPER_MOMKE = dict(input_dims=(512, 1024, 1024), hidden=256, depth=4, heads=2, output_dim=4,
                   task="emotion")
IEMOCAP4_LABELS = ["happy", "sad", "neutral", "angry"]


def _code_digest() -> str:
    """Digest of the model and export code: a changed graph never reuses a stale cache."""
    import hashlib

    import anymodal.export as export_pkg
    import anymodal.train.models as models_pkg

    h = hashlib.sha256()
    for pkg in (models_pkg, export_pkg):
        for f in sorted(Path(pkg.__file__).parent.glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


DEFAULT_MODELS = ("momke", "derl")
# int8 for MoMKE's CPU rows (ort-int8); DERL's paper-sized graphs (375/50/500-token sequences)
# take minutes to quantise and check on 2 cores, so its default bundle stays fp32/fp16
DEFAULT_PRECISIONS = {"momke": ("fp32", "fp16", "int8"), "derl": ("fp32", "fp16")}


def cache_dir(kind: str = "momke") -> Path:
    root = os.environ.get("ANYMODAL_CACHE") or Path.home() / ".cache" / "anymodal"
    return Path(root) / f"default-{kind}-{__version__}-{_code_digest()}"


def _paper_model(kind: str):
    """(model in eval mode, run metadata) of the paper-sized model with random weights."""
    import torch

    torch.manual_seed(0)
    if kind == "derl":
        from anymodal.train.models.derl import DERL, DERLConfig

        meta = {"data": {"dataset": "none (random weights)", "labels": [], "layout": "mmsa",
                         "features": ["audio", "text", "vision"]}}
        return DERL(DERLConfig()).eval(), meta
    from anymodal.train.models.momke import MoMKE, MoMKEConfig

    meta = {"data": {"dataset": "none (random weights)", "labels": IEMOCAP4_LABELS,
                     "features": ["wav2vec-large-c-UTT", "deberta-large-4-UTT", "manet_UTT"]}}
    return MoMKE(MoMKEConfig(**PAPER_MOMKE)).eval(), meta


def default_bundle(progress=print, kind: str = "momke") -> tuple[Path, Path]:
    """(bundle folder, run folder), building them on first use (needs the train extra)."""
    if kind not in DEFAULT_MODELS:
        from anymodal.runtime.errors import InputError

        raise InputError(f"--model {kind!r}: choose from {', '.join(DEFAULT_MODELS)}")
    root = cache_dir(kind)
    bundle, run = root / "bundle", root / "run"
    if (bundle / "manifest.json").is_file() and (run / "model.safetensors").is_file():
        return bundle, run
    try:
        import torch  # noqa: F401
        from anymodal.export.bundle import write_bundle
        from anymodal.train.checkpoint import save_run
    except ImportError as exc:
        from anymodal.runtime.errors import BackendUnavailableError

        raise BackendUnavailableError(
            f"building the default bundle needs PyTorch ({exc}); pip install 'anymodal[train]' "
            "or pass --bundle") from exc
    progress(f"building the default bundle (paper-sized {kind}, random weights) in {root} …")
    model, meta = _paper_model(kind)
    save_run(run, model, meta)
    # int8: random weights have no validation data, so its accuracy is recorded as not measured
    write_bundle(model, {**meta, "source_run": str(run)}, bundle, precisions=DEFAULT_PRECISIONS[kind])
    return bundle, run
