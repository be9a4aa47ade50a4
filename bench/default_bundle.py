"""The default benchmark bundles, random weights (latency does not depend on training): each
family's paper-sized model (`paper_model()` of its training side). Built once and cached,
with the run folder beside the bundle so the PyTorch reference uses the very same weights."""

from __future__ import annotations

import os
from pathlib import Path

from anymodal.runtime.families import DEFAULT_FAMILY

from anymodal import __version__


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


def cache_dir(kind: str) -> Path:
    root = os.environ.get("ANYMODAL_CACHE") or Path.home() / ".cache" / "anymodal"
    return Path(root) / f"default-{kind}-{__version__}-{_code_digest()}"


def default_bundle(progress=print, kind: str = DEFAULT_FAMILY) -> tuple[Path, Path]:
    """(bundle folder, run folder) of a registered family's paper-sized model, building them on
    first use (needs the train extra)."""
    root = cache_dir(kind)
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
    progress(f"building the default bundle (paper-sized {kind}, random weights) in {root} …")
    model, meta = family.paper_model()
    save_run(run, model, meta)
    # int8: random weights have no validation data, so its accuracy is recorded as not measured
    write_bundle(model, {**meta, "source_run": str(run)}, bundle, precisions=family.paper_precisions)
    return bundle, run
