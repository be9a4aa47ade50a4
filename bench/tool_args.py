"""The shared argument of the small `python -m anymodal.bench.*` measurement tools."""

from __future__ import annotations

import argparse
from pathlib import Path


def bundle_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with --bundle; `bundle_or_default` gives the default MoMKE bundle when it is absent."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--bundle", help="bundle folder (default: the built-in paper-sized MoMKE)")
    return ap


def bundle_or_default(bundle: str | None) -> str | Path:
    if bundle:
        return bundle
    from .default_bundle import default_bundle

    return default_bundle(print)[0]
