import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Child Pythons the tests start (`python -c`, `python -m`) run from the repository root: without
# this, Python puts that root first on their sys.path and ./kernels, ./anymodal … shadow the
# installed packages (docs/ARCHITECTURE.md §1). Python >= 3.11 honours it; the py310 checks run
# their children elsewhere.
os.environ["PYTHONSAFEPATH"] = "1"


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
if not _has_cuda():  # the Triton kernels run in Triton's interpreter (set before import)
    os.environ.setdefault("TRITON_INTERPRET", "1")


from anymodal_testing.helpers import make_model, run_config  # noqa: E402


@pytest.fixture(scope="session")
def small_model():
    return make_model()


@pytest.fixture(scope="session")
def small_bundle(small_model, tmp_path_factory):
    from anymodal.export.bundle import write_bundle

    return write_bundle(small_model, run_config(), tmp_path_factory.mktemp("b") / "bundle")


@pytest.fixture(scope="session")
def data_bundle(small_model, tmp_path_factory):
    """The small model's bundle recording a reachable training split (synthetic data beside it)."""
    from anymodal.export.bundle import write_bundle
    from anymodal_testing.helpers import data_run_config

    root = tmp_path_factory.mktemp("db")
    return write_bundle(small_model, data_run_config(root), root / "bundle")


@pytest.fixture(scope="session")
def fused_bundle(small_model, tmp_path_factory):
    """The small model with each router + expert mix as one RouterMix node (--kernels fused)."""
    from anymodal.export.bundle import write_bundle

    return write_bundle(small_model, run_config(), tmp_path_factory.mktemp("fb") / "b", kernels="fused")


@pytest.fixture(scope="session")
def causal_model():
    """Causal MoMKE (streaming conversations), 2 blocks so that cached keys/values of a later
    block depend on the earlier ones."""
    return make_model(depth=2, causal=True)


@pytest.fixture(scope="session")
def causal_bundle(causal_model, tmp_path_factory):
    """Its bundle: the full graphs and one step graph per pattern (fp32)."""
    from anymodal.export.bundle import write_bundle

    return write_bundle(causal_model, run_config(), tmp_path_factory.mktemp("causal") / "bundle")


@pytest.fixture(scope="session")
def derl_data(tmp_path_factory):
    """Synthetic MMSA data, small shapes (the layout's real sizes are exercised by the CLI test)."""
    from anymodal.train.data.synth_mmsa import MmsaSynthConfig, generate_mmsa, parse_shapes

    return generate_mmsa(MmsaSynthConfig(samples=600, shapes=parse_shapes("20x5,12x32,24x8")),
                         tmp_path_factory.mktemp("mmsa"))


def _train_derl(data, out, epochs):
    pytest.importorskip("torch")
    from anymodal.train.derl_trainer import DERLTrainConfig
    from anymodal.train.families.derl import train_derl_run

    return train_derl_run(data, out, "mosi", dict(hidden=32, heads=2),
                          DERLTrainConfig(epochs=epochs, batch_size=32, lr=1e-3), progress=False)


@pytest.fixture(scope="session")
def derl_run(derl_data, tmp_path_factory):
    """A DERL run folder after 2 epochs (~5 s): enough for export, serving and parity tests,
    which compare the runtime with the same weights in PyTorch, whatever they are."""
    return _train_derl(derl_data, tmp_path_factory.mktemp("runs") / "derl", epochs=2)


DERL_TRAINED_EPOCHS = 15  # what the slow tests assert holds with margin from 10 epochs on (seeded)


@pytest.fixture(scope="session")
def derl_trained_run(derl_data, tmp_path_factory):
    """DERL trained with the paper's protocol on `derl_data` (DERL_TRAINED_EPOCHS, ~12 s on 2
    cores): only for tests marked slow that check what training achieves."""
    return _train_derl(derl_data, tmp_path_factory.mktemp("runs") / "derl-trained", epochs=DERL_TRAINED_EPOCHS)


@pytest.fixture(scope="session")
def derl_bundle(derl_run, tmp_path_factory):
    from anymodal.export.api import export_run_folder

    # fp32 only: the fp16 variant's parity is checked by a slow test (it doubles the export time)
    return export_run_folder(derl_run, tmp_path_factory.mktemp("b") / "derl-bundle", ("fp32",))
