"""Shared test helpers (a module, not conftest: several conftest files would shadow it)."""

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
