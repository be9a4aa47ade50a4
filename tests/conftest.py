import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/format_samples.py and helpers

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this clone")
    return SHARED


os.environ.setdefault("TQDM_DISABLE", "1")


DIMS = (6, 10, 8)  # distinct from each other and from the hidden sizes used below
LABELS = ["happy", "sad", "neutral", "angry"]


def make_model(hidden=16, depth=1, seed=0, task="emotion"):
    import torch

    from anymodal.train.models.momke import MoMKE, MoMKEConfig

    torch.manual_seed(seed)
    out = 4 if task == "emotion" else 1
    return MoMKE(MoMKEConfig(input_dims=DIMS, hidden=hidden, depth=depth, heads=2,
                             output_dim=out, task=task)).eval()


def run_config(task="emotion"):
    return {"data": {"labels": LABELS if task == "emotion" else [], "dataset": "synthetic",
                     "features": ["synth-audio", "synth-text", "synth-visual"]}}


@pytest.fixture(scope="session")
def small_model():
    return make_model()


@pytest.fixture(scope="session")
def small_bundle(small_model, tmp_path_factory):
    from anymodal.export.bundle import write_bundle

    return write_bundle(small_model, run_config(), tmp_path_factory.mktemp("b") / "bundle")
