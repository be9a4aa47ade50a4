"""Shared test helpers (a module, not conftest: several conftest files would shadow it)."""

DIMS = (6, 10, 8)  # distinct from each other and from the hidden sizes used below
LABELS = ["happy", "sad", "neutral", "angry"]


def import_file(path):
    """A script of the test tree (tests/portable/*.py) as a module, loaded by path under a name of
    its own: its folder never joins sys.path (no file of the repository under a bare name)."""
    import importlib.util
    from pathlib import Path

    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"anymodal_testing_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_model(hidden=16, depth=1, seed=0, task="emotion", causal=False, preset="paper"):
    import torch

    from anymodal.train.models.momke import MoMKE, MoMKEConfig

    torch.manual_seed(seed)
    out = 4 if task == "emotion" else 1
    return MoMKE(MoMKEConfig.preset_config(preset, input_dims=DIMS, hidden=hidden, depth=depth, heads=2,
                                           output_dim=out, task=task, causal=causal)).eval()


def random_turns(turns: int, seed: int = 0):
    """(pattern, add() kwargs) for `turns` utterances of a conversation, each with a random pattern."""
    import numpy as np

    from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

    rng = np.random.default_rng(seed)
    for _ in range(turns):
        pattern = ALL_PATTERNS[rng.integers(len(ALL_PATTERNS))]
        yield pattern, {MODALITY_NAMES[m]: rng.standard_normal(d).astype(np.float32)
                        for m, d in zip(MODALITIES, DIMS) if m in pattern}


def run_config(task="emotion"):
    return {"data": {"labels": LABELS if task == "emotion" else [], "dataset": "synthetic",
                     "features": ["synth-audio", "synth-text", "synth-visual"]}}


DERL_SHAPES = ((20, 5), (12, 32), (24, 8))  # (T, D) audio, text, visual: small but all distinct


def make_derl(hidden=16, seed=0, private=1, shared=3):
    import torch

    from anymodal.train.models.derl import DERL, DERLConfig

    torch.manual_seed(seed)
    return DERL(DERLConfig(input_dims=tuple(d for _, d in DERL_SHAPES), hidden=hidden, heads=2,
                           private_experts=private, shared_experts=shared,
                           absent_lengths=tuple(t for t, _ in DERL_SHAPES))).eval()


def derl_inputs(batch=3, seed=0, lengths=None):
    """Random DERL inputs: xs/masks/avails keyed by modality, rows b > 0 ragged."""
    import torch

    g = torch.Generator().manual_seed(seed)
    xs, masks = {}, {}
    for m, (T, D) in zip("atv", DERL_SHAPES):
        xs[m] = torch.randn(batch, T, D, generator=g)
        masks[m] = torch.ones(batch, T, dtype=torch.bool)
        for b in range(1, batch):
            masks[m][b, T - 2 * b:] = False
    return xs, masks, {m: v.clone() for m, v in masks.items()}


def derl_args(xs, masks, avails):
    return [xs[m] for m in "atv"] + [masks[m] for m in "atv"] + [avails[m] for m in "atv"]


def data_run_config(root):
    """run_config() plus a recorded training split on disk (synthetic, the model's DIMS) and the
    run folder that records it, as training writes them: what INT8 calibration and engine parity
    read. The self-test's bundles are made the same way."""
    from anymodal.selftest_bundles import synthetic_run

    cfg = synthetic_run(root, DIMS)
    return {**cfg, "data": {**run_config()["data"], **cfg["data"], "labels": LABELS}}
