"""The default benchmark bundles, random weights (latency does not depend on training): each
family's paper-sized model (`paper_model()` of its training side). Built once and cached,
with the run folder beside the bundle so the PyTorch reference uses the very same weights."""

from __future__ import annotations

import os
from pathlib import Path

from anymodal import __version__
from anymodal.runtime.families import DEFAULT_FAMILY


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


def cache_dir(kind: str, causal: bool = False) -> Path:
    root = os.environ.get("ANYMODAL_CACHE") or Path.home() / ".cache" / "anymodal"
    return Path(root) / f"default-{kind}{'-causal' if causal else ''}-{__version__}-{_code_digest()}"


def default_bundle(progress=print, kind: str = DEFAULT_FAMILY, causal: bool = False) -> tuple[Path, Path]:
    """(bundle folder, run folder) of a registered family's paper-sized model, building them on
    first use (needs the train extra). causal: the same model with causal attention (its config's
    `causal` field), whose bundle streams conversations (rt-bench stream)."""
    root = cache_dir(kind, causal)
    bundle, run = root / "bundle", root / "run"
    if (bundle / "manifest.json").is_file() and (run / "model.safetensors").is_file():
        return bundle, run
    try:
        import torch  # noqa: F401

        from anymodal.export.bundle import write_bundle
        from anymodal.train.checkpoint import save_run
        from anymodal.train.families import get_train_family
    except ImportError as exc:
        from anymodal.runtime.errors import BackendUnavailableError

        raise BackendUnavailableError(
            f"building the default bundle needs PyTorch ({exc}); pip install 'anymodal[train]' "
            "or pass --bundle") from exc
    family = get_train_family(kind)  # DataError naming the known families
    progress(f"building the default bundle (paper-sized {'causal ' if causal else ''}{kind}, random weights) "
             f"in {root} …")
    model, meta = family.paper_model()
    if causal:
        model = _causal(model, kind)
    save_run(run, model, meta)
    # int8: random weights have no validation data, so its accuracy is recorded as not measured;
    # the causal bundle serves rt-bench stream (fp32, or int8 step graphs with --precision int8)
    precisions = ("fp32", "int8") if causal else family.paper_precisions
    write_bundle(model, {**meta, "source_run": str(run)}, bundle, precisions=precisions)
    return bundle, run


def _causal(model, kind: str):
    """The paper-sized model rebuilt with causal attention (same seed as paper_model)."""
    import dataclasses

    import torch

    from anymodal.export.capabilities import has_causal_variant

    if not has_causal_variant(model):
        from anymodal.runtime.errors import InputError

        raise InputError(f"the {kind} family has no causal variant (its config has no 'causal' field)")
    torch.manual_seed(0)
    return type(model)(dataclasses.replace(model.cfg, causal=True)).eval()
