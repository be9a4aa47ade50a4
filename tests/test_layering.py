"""The layering of docs/ARCHITECTURE.md §2 holds (AST check, tests/layering.py), and the check
catches a planted violation with its file and line."""

from pathlib import Path

from layering import RULES, violations

ROOT = Path(__file__).resolve().parents[1]


def test_the_source_follows_the_layers():
    assert violations(ROOT) == []


def test_a_planted_violation_is_reported_with_file_and_line(tmp_path):
    for folder in ("runtime", "kernels", "train", "export", "bench", "anymodal"):
        (tmp_path / folder).mkdir()
    (tmp_path / "runtime" / "ok.py").write_text("import numpy as np\nfrom .errors import BundleError\n")
    (tmp_path / "runtime" / "bad.py").write_text("import numpy\n\n\ndef f():\n    import torch\n")
    (tmp_path / "train" / "leak.py").write_text("from ..export import bundle\n")
    (tmp_path / "export" / "eager.py").write_text("import torch\n\n\ndef g():\n    import torch  # lazy: fine\n")
    (tmp_path / "bench" / "lazy.py").write_text("def h():\n    from anymodal.train import api\n")
    found = violations(tmp_path, RULES)
    assert found == [
        "export/eager.py:1: imports torch — torch (and the PyTorch models) only in export/torch_export.py",
        "runtime/bad.py:5: imports torch — the runtime is torch-free and knows no layer above it",
        "train/leak.py:1: imports anymodal.export — train knows nothing of export or bench",
        "train/leak.py:1: imports anymodal.export.bundle — train knows nothing of export or bench",
    ]
