"""Training to convergence on synthetic emotion data: the model learns what the data holds."""

import pytest

from anymodal.train.api import evaluate_run
from anymodal.train.data.synth import SynthConfig, generate
from anymodal.train.families.momke import train_momke_run
from anymodal.train.momke_trainer import TrainConfig

SMALL = dict(hidden=64, depth=1, heads=2, dropout=0.3)
# 200 conversations, 10 + 10 epochs: the asserts below hold with margin at 1 and 2 threads
EPOCHS = dict(epochs_stage1=10, epochs_stage2=10, lr=1e-3)
CHANCE = 0.25


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(SynthConfig(task="emotion4", conversations=200, seed=1),
                    tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def all_patterns(synth, tmp_path_factory):
    run = train_momke_run(synth, "iemocap4", tmp_path_factory.mktemp("run"), model_overrides=SMALL,
                          train_cfg=TrainConfig(**EPOCHS), progress=False)
    return evaluate_run(run)["conditions"]


@pytest.mark.slow
def test_full_pattern_beats_every_single_modality_and_chance(all_patterns):
    wa = {p: r["wa"] for p, r in all_patterns.items()}
    for single in "atv":
        assert wa["atv"] > wa[single] + 0.02, wa
    for p, acc in wa.items():
        assert acc > CHANCE + 0.08, (p, wa)
    assert wa["t"] == max(wa[s] for s in "atv"), wa  # text is the most informative modality


@pytest.mark.slow
@pytest.mark.parametrize("condition", ["t", "av"])
def test_all_patterns_model_close_to_per_condition_model(synth, all_patterns, condition, tmp_path):
    run = train_momke_run(synth, "iemocap4", tmp_path, model_overrides=SMALL,
                          train_cfg=TrainConfig(protocol="fixed", condition=condition, **EPOCHS),
                          progress=False)
    fixed = evaluate_run(run)["conditions"][condition]["wa"]
    assert all_patterns[condition]["wa"] >= fixed - 0.03, (all_patterns[condition]["wa"], fixed)
