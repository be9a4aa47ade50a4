"""DERL's pieces: losses against hand-computed values, shared experts, temperatures, masking,
specialisation to a pattern."""

import math

import pytest

torch = pytest.importorskip("torch")

from anymodal.train.models.derl import DERL, abs_cosine  # noqa: E402
from anymodal_testing.helpers import derl_args, derl_inputs, make_derl  # noqa: E402


def test_orthogonality_loss_hand_computed():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]])  # [1, 3, 2]
    b = torch.tensor([[[0.0, 2.0], [2.0, 2.0], [-3.0, 0.0]]])
    # |cos| per token: 0 (orthogonal), 1 (parallel), 1 (anti-parallel counts as redundant)
    assert abs_cosine(a, b).item() == pytest.approx(2 / 3)
    c = torch.tensor([[[3.0, 4.0]]])
    d = torch.tensor([[[4.0, 3.0]]])
    assert abs_cosine(c, d).item() == pytest.approx(24 / 25)


def test_losses_match_an_independent_computation():
    model = make_derl()  # eval mode: no dropout, so both computations see the same network
    xs, masks, avails = derl_inputs(seed=1)
    avails["t"][0, :5] = False
    target = torch.tensor([[1.0], [-2.0], [0.5]])
    got = model.losses(xs, masks, avails, target)
    rec1 = rec2 = rec3 = dec = 0.0
    priv, shar = {}, {}
    with torch.no_grad():
        for m in "atv":
            u_hat, priv[m], shar[m] = model.branch(m, xs[m], masks[m], avails[m])
            u = model.encode(m, xs[m], masks[m])
            hp, hs, _ = model.disentangle(m, u)
            cos = (priv[m] * shar[m]).sum(-1) / (priv[m].norm(dim=-1) * shar[m].norm(dim=-1))
            dec += cos.abs().mean()
            rec1 += (model.rec_input[m](u_hat) - u).abs().mean()
            rec2 += (model.rec_private[m](priv[m]) - hp).abs().mean() + (model.rec_shared[m](shar[m]) - hs).abs().mean()
            rec3 += (model.rec_joint[m](torch.cat([priv[m], shar[m]], -1)) - u).abs().mean()
        score, _ = model.fuse(priv, shar)
    task = ((score - target) ** 2).mean()
    rec = (rec1 + rec2 + rec3) / 3
    assert got["dec"].item() == pytest.approx(dec.item(), rel=1e-5)
    assert got["rec"].item() == pytest.approx(rec.item(), rel=1e-5)
    assert got["task"].item() == pytest.approx(task.item(), rel=1e-5)
    assert got["loss"].item() == pytest.approx((task + dec + rec).item(), rel=1e-5)


def test_shared_experts_are_one_set_used_by_every_modality():
    model = make_derl(private=1, shared=3)
    calls = []
    handle = model.shared[0].register_forward_hook(lambda *a: calls.append(1))
    xs, masks, avails = derl_inputs()
    model(*derl_args(xs, masks, avails))
    handle.remove()
    assert len(calls) == 3  # one call per modality, same module
    assert len(model.shared) == 3 and all(len(model.private[m]) == 1 for m in "atv")
    # a gradient reaches the shared weights from each modality on its own
    for m in "atv":
        model.zero_grad()
        _, hp, hs = model.branch(m, xs[m], masks[m], avails[m])
        hs.sum().backward()
        assert model.shared[1][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("private,shared", [(1, 3), (3, 3)])
def test_router_temperatures_are_learnable_and_start_at_paper_values(private, shared):
    model = make_derl(private=private, shared=shared).train()
    for m in "atv":
        t = model.hed_temperature[m]
        assert t.requires_grad and t.item() == pytest.approx(1 / (private + shared))
    assert model.mrf_temperature.requires_grad and model.mrf_temperature.item() == pytest.approx(1 / 6)
    xs, masks, avails = derl_inputs()
    model.losses(xs, masks, avails, torch.ones(3, 1))["loss"].backward()
    assert all(model.hed_temperature[m].grad is not None for m in "atv")
    assert model.mrf_temperature.grad is not None and model.mrf_temperature.grad != 0


def test_routing_weights_are_distributions():
    model = make_derl()
    xs, masks, avails = derl_inputs()
    _, w = model(*derl_args(xs, masks, avails))
    assert w.shape == (3, model.cfg.bottleneck, 6)
    assert torch.allclose(w.sum(-1), torch.ones(3, model.cfg.bottleneck), atol=1e-6)
    _, _, hed_w = model.disentangle("a", torch.randn(2, 4, 16))
    assert torch.allclose(hed_w.sum(-1), torch.ones(2, 4), atol=1e-6)


def test_padding_never_changes_outputs():
    model = make_derl()
    xs, masks, avails = derl_inputs(batch=1)
    ref, _ = model(*derl_args(xs, masks, avails))
    for m in "atv":  # append padding filled with garbage
        xs[m] = torch.cat([xs[m], torch.full((1, 5, xs[m].shape[2]), 1e4)], 1)
        masks[m] = torch.cat([masks[m], torch.zeros(1, 5, dtype=torch.bool)], 1)
        avails[m] = torch.cat([avails[m], torch.zeros(1, 5, dtype=torch.bool)], 1)
    got, _ = model(*derl_args(xs, masks, avails))
    assert torch.allclose(got, ref, atol=1e-6)


def test_missing_tokens_features_have_no_effect():
    model = make_derl()
    xs, masks, avails = derl_inputs()
    avails["v"][:, ::2] = False
    ref, _ = model(*derl_args(xs, masks, avails))
    xs["v"] = torch.where(avails["v"][..., None], xs["v"], torch.tensor(float("nan")))
    got, _ = model(*derl_args(xs, masks, avails))
    assert torch.equal(got, ref)
    # text tokens that are missing become the [UNK] representation, not zeros
    assert torch.equal(model.corrupt("t", xs["t"], torch.zeros_like(avails["t"]))[0, 0], model.unk_text)


@pytest.mark.parametrize("pattern", ["a", "t", "v", "at", "av", "tv", "atv"])
def test_specialised_model_equals_full_model_with_absent_constants(pattern):
    model = make_derl(seed=3)
    with torch.no_grad():
        model.unk_text.normal_()  # a non-trivial [UNK] vector
    xs, masks, avails = derl_inputs(seed=2)
    spec = model.specialise(pattern)
    got, gw = spec(*[xs[m] for m in pattern], *[masks[m] for m in pattern])
    for m in "atv":
        if m not in pattern:
            xs[m], masks[m], avails[m] = model.absent_input(m, 3)
    ref, rw = model(*derl_args(xs, masks, avails))
    assert torch.allclose(got, ref, atol=1e-5) and torch.allclose(gw, rw, atol=1e-6)


def test_parameter_report_adds_up():
    model = make_derl()
    rep = model.parameter_report()
    assert rep["total"] == sum(p.numel() for p in model.parameters())
    assert rep["served"] == rep["total"] - rep["components"]["mlcr_reconstruction"]
    assert rep["active"]["atv"] == rep["served"]
    assert rep["active"]["a"] < rep["active"]["at"] < rep["active"]["atv"]
    assert rep["components"]["text_encoder"] == 0 and rep["total_without_text_encoder"] == rep["total"]


def test_paper_sized_derl_parameter_count():
    rep = DERL(type(make_derl().cfg)()).parameter_report()  # MOSI preset defaults
    assert 1.5e6 < rep["total"] < 2.2e6  # docs/performance.md (DERL) explains the gap to the paper's 2.89 M
    assert math.isclose(rep["total"], sum(rep["components"].values()))
