"""The import rules of docs/ARCHITECTURE.md §2, checked on the source's AST (tests/test_layering.py).

A rule: files under `folder` may not import modules starting with `forbidden` — anywhere, or
only at module level ("module": a lazy import inside a function, behind the flag that needs
it, is allowed) — except the files listed in `allowed`.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the py310 checks do not run the layering test
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]


def top_level_packages(root: Path = ROOT) -> dict[str, str]:
    """{folder on disk: its package in the anymodal namespace} for every top-level folder that
    pyproject's package-dir maps (the one table the packaging and layering tests both read)."""
    dirs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {folder: pkg for pkg, folder in dirs.items() if "/" not in folder}


PACKAGES = top_level_packages()


@dataclass(frozen=True)
class Rule:
    folder: str
    forbidden: tuple[str, ...]
    scope: str  # "any" | "module"
    why: str
    allowed: tuple[str, ...] = ()  # files exempt from the rule
    allowed_modules: tuple[str, ...] = ()  # forbidden-prefix modules that may still be imported


RULES = (
    Rule("runtime", ("torch", "triton", "anymodal.train", "anymodal.export", "anymodal.bench",
                     "anymodal.kernels", "anymodal.serve"), "any",
         "the runtime is torch-free and knows no layer above it"),
    Rule("serve", ("torch", "triton", "anymodal.train", "anymodal.export", "anymodal.bench", "anymodal.kernels"),
         "any", "serving runs the torch-free runtime and nothing above it", allowed=("serve/cli.py",)),
    Rule("serve", ("torch", "triton", "anymodal.train", "anymodal.export", "anymodal.bench", "anymodal.kernels"),
         "module", "the serve CLI imports lazily, inside each command"),
    Rule("kernels", ("torch", "anymodal.train", "anymodal.export", "anymodal.bench", "anymodal.runtime.bundle",
                     "anymodal.runtime.runtime", "anymodal.runtime.families"), "any",
         "kernels know no models or bundles", allowed=("kernels/router_mix.py",)),  # launcher takes torch tensors
    Rule("kernels", ("torch", "triton", "tensorrt"), "module", "GPU libraries are imported lazily"),
    Rule("train", ("anymodal.export", "anymodal.bench"), "any", "train knows nothing of export or bench"),
    Rule("export", ("torch", "anymodal.train"), "module",
         "torch (and the PyTorch models) only in export/torch_export.py", allowed=("export/torch_export.py",)),
    # the serving repository is written from serve's tensor declarations, so the two cannot disagree
    Rule("export", ("anymodal.serve",), "any", "export reads serve's tensor declarations only",
         allowed_modules=("anymodal.serve.family_io",)),
    Rule("bench", ("torch", "anymodal.train", "anymodal.export"), "module",
         "bench uses train/export only behind the flags that need them"),
    Rule("anymodal", ("torch", "triton", "anymodal.train", "anymodal.export", "anymodal.bench"), "module",
         "the CLI imports everything lazily, inside each command (rt-* --help without torch)",
         allowed=("anymodal/cli.py",)),  # cli: only the torch-free family registry at import
)
# cli.py may import at module level only torch-free modules: the runtime, its choices (enums),
# the commands' shared app helper and the families' registry (it lists `rt-train <family>`)
CLI_MODULE_LEVEL = ("anymodal.train.families", "anymodal.choices", "anymodal.cli_app")


def _imports(tree: ast.AST, package: str):
    """(line, module, at module level) for every import, relative ones resolved."""
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            yield node.lineno, name, id(node) in top


def _package_of(rel: Path) -> str:
    parts = rel.with_suffix("").parts  # runtime/families/base -> anymodal.runtime.families
    return ".".join([PACKAGES[parts[0]], *parts[1:-1]])


def violations(root: Path, rules=RULES) -> list[str]:
    """`path:line: imports X — why` for every import that breaks a rule, sorted."""
    out = set()
    for rule in rules:
        for path in sorted((root / rule.folder).rglob("*.py")):
            rel = path.relative_to(root)
            if str(rel) in rule.allowed:
                continue
            tree = ast.parse(path.read_text(), filename=str(rel))
            for line, name, module_level in _imports(tree, _package_of(rel)):
                if rule.scope == "module" and not module_level:
                    continue
                if any(name == a or name.startswith(a + ".") for a in rule.allowed_modules):
                    continue
                if any(name == f or name.startswith(f + ".") for f in rule.forbidden):
                    out.add(f"{rel}:{line}: imports {name} — {rule.why}")
    cli = root / "anymodal" / "cli.py"
    if cli.is_file():
        for line, name, module_level in _imports(ast.parse(cli.read_text()), "anymodal"):
            if module_level and name.split(".")[:2] != ["anymodal", "runtime"] and name.startswith("anymodal.") \
                    and not any(name == a or name.startswith(a + ".") for a in CLI_MODULE_LEVEL):
                out.add(f"anymodal/cli.py:{line}: imports {name} — the CLI imports lazily, inside each command")
    return sorted(out)
