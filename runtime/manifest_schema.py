"""Reading and checking manifest.json against the versioned JSON Schema shipped in the package.

The schema (manifest-v<N>.schema.json beside this module) holds what JSON Schema can say: types,
required keys, normalised relative paths, sha256 format, bounded dims and lengths. `check_manifest`
adds what it cannot: every file a graph names is in the hashed file table, the requested
precision exists, the input dims and label count agree with the graphs' own specs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import BundleError
from .patterns import MODALITIES

SCHEMA_VERSION = 1  # what the exporter writes
READABLE_VERSIONS = (1,)  # what this build reads: one schema file each
MAX_MANIFEST_BYTES = 16 << 20


@lru_cache(maxsize=None)
def _validator(version: int):
    import jsonschema

    text = resources.files(__package__).joinpath(f"manifest-v{version}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def read_manifest(path: Path) -> dict:
    """The parsed manifest; BundleError naming the file for unreadable, non-UTF-8 or non-JSON."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: {path.stat().st_size} bytes, more than a manifest can be "
                              f"({MAX_MANIFEST_BYTES} bytes)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing — {path.parent} is not an anymodal bundle") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    try:
        manifest = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, or NaN/Infinity refused below
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{path}: JSON nested too deeply") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    return manifest


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (the exporter writes null for undefined values)")


def check_manifest(manifest: dict, path: Path) -> None:
    """Version, schema and cross-reference checks; BundleError names the file and the key."""
    version = manifest.get("schema_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise BundleError(f"{path}: schema_version {version!r} — this build of anymodal reads "
                          f"{', '.join(map(str, READABLE_VERSIONS))}; re-export the bundle or upgrade")
    errors = sorted(_validator(version).iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BundleError(f"{path}: {where}: {_short(e.message)}{more}")
    _check_references(manifest, path)


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


def _check_references(manifest: dict, path: Path) -> None:
    files = manifest["files"]
    default = manifest.get("default_precision", "fp32")
    if default not in manifest["variants"]:
        raise BundleError(f"{path}: default_precision {default!r} is not a variant "
                          f"(has {', '.join(manifest['variants'])})")
    dims = {m: manifest["inputs"][m]["dim"] for m in MODALITIES}
    input_names = {manifest["inputs"][m]["name"]: m for m in MODALITIES}
    task, labels = manifest["model"]["task"], manifest["model"].get("labels", [])
    if task == "emotion" and not labels:
        raise BundleError(f"{path}: model/labels: an emotion model needs its class names")
    for precision, variant in manifest["variants"].items():
        for graph, info in variant.get("ort_graphs", {}).get("graphs", {}).items():
            where = f"variants/{precision}/ort_graphs/graphs/{graph}"
            if graph not in variant["graphs"]:
                raise BundleError(f"{path}: {where}: a copy of a graph the variant does not have")
            for rel in [info["file"], *info.get("data_files", [])]:
                if rel not in files:
                    raise BundleError(f"{path}: {where}: {rel!r} is not in the hashed file table")
        graphs = [("graphs", g, info) for g, info in variant["graphs"].items()]
        graphs += [("step_graphs", g, info) for g, info in variant.get("step_graphs", {}).items()]
        for kind, graph, info in graphs:
            where = f"variants/{precision}/{kind}/{graph}"
            for rel in [info["file"], *info.get("data_files", [])]:
                if rel not in files:
                    raise BundleError(f"{path}: {where}: {rel!r} is not in the hashed file table")
            for spec in info["inputs"]:
                m = input_names.get(spec["name"])
                if m is not None and spec["shape"][-1] != dims[m]:
                    raise BundleError(f"{path}: inputs/{m}/dim is {dims[m]} but {where} takes "
                                      f"{spec['name']} of width {spec['shape'][-1]}")
            logits = next((o for o in info["outputs"] if o["name"] == "logits"), None)
            width = None if logits is None else logits["shape"][-1]
            if task == "emotion" and width is not None and width != len(labels):
                raise BundleError(f"{path}: model/labels has {len(labels)} names but {where} "
                                  f"outputs {width} classes")
            if task == "sentiment" and width not in (None, 1):
                raise BundleError(f"{path}: model/task is sentiment (one score) but {where} outputs "
                                  f"{width} values")
