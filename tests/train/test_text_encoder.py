"""MMSA `text_bert` ids encoded by a local BERT-style folder (a tiny random config: no
weights can be downloaded here)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from anymodal.runtime.errors import DataError  # noqa: E402
from anymodal.train.data.mmsa import read_mmsa  # noqa: E402
from anymodal.train.data.synth_mmsa import MmsaSynthConfig, generate_mmsa, parse_shapes  # noqa: E402
from anymodal_testing.format_samples import write_mmsa_sample  # noqa: E402


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertModel(cfg).save_pretrained(folder)
    return folder


def test_text_bert_ids_are_encoded_by_the_local_encoder(tmp_path, encoder_dir):
    path = write_mmsa_sample(tmp_path / "unaligned_50.pkl")
    plain, encoded = read_mmsa(path), read_mmsa(path, encoder_dir)
    t = encoded["train"]
    assert t.dims == (5, 16, 7) and plain["train"].dims == (5, 16, 7)  # hidden 16 vs text dim 16
    assert not np.allclose(t.feats["t"], plain["train"].feats["t"])
    assert (t.feats["t"][~t.masks["t"]] == 0).all() and np.abs(t.feats["t"][t.masks["t"]]).sum() > 0
    np.testing.assert_array_equal(t.masks["t"], plain["train"].masks["t"])


def test_missing_or_broken_encoder_folder_is_a_data_error(tmp_path):
    path = write_mmsa_sample(tmp_path / "unaligned_50.pkl")
    with pytest.raises(DataError, match="no config.json"):
        read_mmsa(path, tmp_path / "nowhere")


def test_derl_trains_on_encoded_text_and_reports_the_encoder(tmp_path, encoder_dir):
    from anymodal.train.api import evaluate_run
    from anymodal.train.checkpoint import load_run
    from anymodal.train.derl_trainer import DERLTrainConfig
    from anymodal.train.families.derl import train_derl_run

    generate_mmsa(MmsaSynthConfig(samples=40, shapes=parse_shapes("10x5,12x32,10x8")), tmp_path / "d")
    run = train_derl_run(tmp_path / "d", tmp_path / "run", "mosi", dict(hidden=16, heads=2),
                         DERLTrainConfig(epochs=1), progress=False, text_encoder=encoder_dir)
    model, cfg = load_run(run)
    assert model.cfg.input_dims[1] == 16  # the encoder's hidden size, not the pickle's 32
    rep = model.parameter_report()
    n_enc = sum(p.numel() for p in transformers.BertModel.from_pretrained(encoder_dir).parameters())
    assert rep["components"]["text_encoder"] == n_enc
    assert rep["total"] - rep["total_without_text_encoder"] == n_enc
    assert rep["served"] < rep["total_without_text_encoder"]  # the encoder is never in a graph
    assert json.loads((run / "config.json").read_text())["data"]["text_encoder"] == str(encoder_dir.resolve())
    assert len(evaluate_run(run)["conditions"]) == 7  # rt-eval re-encodes with the recorded folder
