"""The layering of docs/ARCHITECTURE.md §2 holds (AST check, tests/support/anymodal_testing/layering.py), and the check
catches a planted violation with its file and line."""

from pathlib import Path

from anymodal_testing.layering import PACKAGES, RULES, violations

ROOT = Path(__file__).resolve().parents[1]


def test_the_source_follows_the_layers():
    assert violations(ROOT) == []


def test_a_planted_violation_is_reported_with_file_and_line(tmp_path):
    for folder in ("runtime", "kernels", "train", "export", "bench", "anymodal", "serve"):
        (tmp_path / folder).mkdir()
    (tmp_path / "runtime" / "ok.py").write_text("import numpy as np\nfrom .errors import BundleError\n")
    (tmp_path / "runtime" / "bad.py").write_text("import numpy\n\n\ndef f():\n    import torch\n")
    (tmp_path / "train" / "leak.py").write_text("from ..export import bundle\n")
    (tmp_path / "export" / "eager.py").write_text("import torch\n\n\ndef g():\n    import torch  # lazy: fine\n")
    (tmp_path / "bench" / "lazy.py").write_text("def h():\n    from anymodal.train import api\n")
    (tmp_path / "serve" / "up.py").write_text("from anymodal.export import bundle\n")
    (tmp_path / "export" / "decl.py").write_text("from anymodal.serve.family_io import input_decls\n"
                                                   "from anymodal.serve import server\n")
    found = violations(tmp_path, RULES)
    assert found == sorted([
        "export/decl.py:2: imports anymodal.serve — export reads serve's tensor declarations only",
        "export/decl.py:2: imports anymodal.serve.server — export reads serve's tensor declarations only",
        "export/eager.py:1: imports torch — torch (and the PyTorch models) only in export/torch_export.py",
        "runtime/bad.py:5: imports torch — the runtime is torch-free and knows no layer above it",
        "serve/up.py:1: imports anymodal.export — serving runs the torch-free runtime and nothing above it",
        "serve/up.py:1: imports anymodal.export.bundle — serving runs the torch-free runtime and nothing above it",
        "serve/up.py:1: imports anymodal.export — the serve CLI imports lazily, inside each command",
        "serve/up.py:1: imports anymodal.export.bundle — the serve CLI imports lazily, inside each command",
        "train/leak.py:1: imports anymodal.export — train knows nothing of export or bench",
        "train/leak.py:1: imports anymodal.export.bundle — train knows nothing of export or bench",
    ])


def test_every_packaged_folder_has_a_layer():
    """The layering table and pyproject's package table cover the same folders."""
    assert {"runtime", "export", "kernels", "train", "bench", "serve", "anymodal"} <= set(PACKAGES)
    assert {r.folder for r in RULES} == set(PACKAGES)
