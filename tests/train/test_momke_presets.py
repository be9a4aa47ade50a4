"""Both MoMKE presets: the authors' parameter count, the config's sources, the stacked-expert
implementation against the authors' computation, and specialised/exported parity."""

import json

import pytest
import torch

from anymodal.runtime.errors import DataError
from anymodal.train.models.momke import MoMKE, MoMKEConfig
from anymodal.train.models.momke_reference import reference_forward

DIMS = (6, 10, 8)


def tiny(preset, seed=0):
    torch.manual_seed(seed)
    return MoMKE(MoMKEConfig.preset_config(preset, input_dims=DIMS, hidden=16, depth=2, heads=2)).eval()


def test_authors_preset_has_the_authors_parameter_count_at_iemocap_sizes():
    # wxxv/MoMKE at IEMOCAP sizes (512/1024/1024, D_e 256, depth 4, 2 heads, 4 classes): 5,400,089
    authors = MoMKE(MoMKEConfig.preset_config("authors"))
    assert authors.parameter_report()["total"] == 5_400_089
    paper = MoMKE(MoMKEConfig.preset_config("paper"))
    # + LayerNorms (2 per block + final) and the MSA output projection of every block
    extra = 3 * (4 * (2 * 2 * 256 + 256 * 256 + 256) + 2 * 256)
    assert paper.parameter_report()["total"] == 5_400_089 + extra


def test_config_records_the_source_of_every_choice_and_round_trips():
    cfg = MoMKEConfig.preset_config("authors", hidden=32)
    d = cfg.to_dict()
    assert "code" in d["sources"]["layer_norm"] and "paper" in d["sources"]["hidden"]
    assert "Eq. 14" in MoMKEConfig().to_dict()["sources"]["layer_norm"]
    assert MoMKEConfig.from_dict(json.loads(json.dumps(d))) == cfg
    with pytest.raises(DataError, match="unknown MoMKE preset 'x'"):
        MoMKEConfig.preset_config("x")


@pytest.mark.parametrize("preset", ["paper", "authors"])
def test_stacked_experts_compute_what_the_authors_code_computes(preset):
    model = tiny(preset)
    g = torch.Generator().manual_seed(1)
    B, L = 3, 6
    a, t, v = (torch.randn(B, L, d, generator=g) for d in DIMS)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 4:] = False
    avail = torch.rand(B, L, 3, generator=g) < 0.6
    avail[2, :, 1] = False  # one conversation without text at all
    with torch.no_grad():
        ours, _ = model(a, t, v, mask, avail)
        zeroed = [x * avail[..., i, None] for i, x in enumerate((a, t, v))]
        ref = reference_forward(model, *zeroed, mask, avail)
    torch.testing.assert_close(ours[mask], ref[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ["paper", "authors"])
def test_specialised_graph_equals_masked_model(preset):
    model = tiny(preset)
    g = torch.Generator().manual_seed(2)
    a, t, v = (torch.randn(2, 5, d, generator=g) for d in DIMS)
    mask = torch.ones(2, 5, dtype=torch.bool)
    avail = torch.tensor([True, False, True]).expand(2, 5, 3)
    with torch.no_grad():
        full, _ = model(a, t, v, mask, avail)
        spec, _ = model.specialise("av")(a, v, mask)
    torch.testing.assert_close(spec, full, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_authors_preset_exports_with_parity(tmp_path):
    from anymodal.export.bundle import write_bundle

    model = tiny("authors")
    out = write_bundle(model, {"data": {"labels": ["a", "b", "c", "d"]}}, tmp_path / "b")
    mf = json.loads((out / "manifest.json").read_text())
    assert mf["model"]["config"]["preset"] == "authors"
    assert all(r["max_error"] <= 1e-4 for r in mf["parity"]["fp32"].values())
