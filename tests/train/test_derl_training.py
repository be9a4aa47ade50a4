"""DERL trained in the test suite on synthetic MMSA data (paper protocol, small model)."""

import json

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # trains DERL_TRAINED_EPOCHS epochs (the derl_trained_run fixture)

from anymodal.train.api import evaluate_run  # noqa: E402


@pytest.fixture(scope="module")
def results(derl_trained_run):
    return evaluate_run(derl_trained_run)


def test_run_folder_and_selection_on_validation(derl_trained_run):
    cfg = json.loads((derl_trained_run / "config.json").read_text())
    assert cfg["model"]["kind"] == "derl" and cfg["data"]["layout"] == "mmsa"
    log = [json.loads(line) for line in (derl_trained_run / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 15  # conftest.DERL_TRAINED_EPOCHS
    best = min(log, key=lambda e: e["val_mae"])
    assert cfg["training"]["best_epoch"] == best["epoch"]
    assert log[-1]["train_loss"] < log[0]["train_loss"]


def test_metrics_improve_as_the_missing_rate_falls(results):
    r = results["rates"]
    # monotone within noise across 0.0 / 0.5 / 0.9
    assert r["0.0"]["mae"] < r["0.5"]["mae"] - 0.03 < r["0.9"]["mae"] - 0.06
    assert r["0.0"]["acc2_non0"] > r["0.5"]["acc2_non0"] > r["0.9"]["acc2_non0"]
    assert set(results["rates_average"]) == set(r["0.0"])
    for metrics in r.values():
        assert 0 <= metrics["acc2_non0"] <= 1 and 0 <= metrics["acc7"] <= 1


def test_text_present_conditions_beat_text_absent_ones(results):
    c = results["conditions"]
    with_text = [c[p]["f1_non0"] for p in ("t", "at", "tv", "atv")]
    without_text = [c[p]["f1_non0"] for p in ("a", "v", "av")]
    assert min(with_text) > max(without_text) + 0.05
    assert min(c[p]["mae"] for p in ("a", "v", "av")) > max(c[p]["mae"] for p in ("t", "at", "tv", "atv"))
