import pytest
import torch

from anymodal.train.checkpoint import load_run, save_run
from anymodal.train.models.momke import MoMKE, MoMKEConfig, MoMKESpecialised
from anymodal.train.momke_trainer import TrainConfig, task_loss

DIMS = (6, 10, 8)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return MoMKE(MoMKEConfig(input_dims=DIMS, hidden=16, depth=2, heads=2, output_dim=4)).eval()


def inputs(B=2, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, L, d, generator=g) for d in DIMS]


def full(B, L, pattern="atv"):
    mask = torch.ones(B, L, dtype=torch.bool)
    avail = torch.tensor([m in pattern for m in "atv"]).expand(B, L, 3)
    return mask, avail


def test_padding_never_changes_other_utterances(model):
    a, t, v = inputs(B=1, L=4)
    mask, avail = full(1, 4)
    ref, _ = model(a, t, v, mask, avail)
    pad = [torch.cat([x, 100 * torch.randn(1, 3, x.shape[-1])], dim=1) for x in (a, t, v)]
    mask2 = torch.tensor([[True] * 4 + [False] * 3])
    out, _ = model(*pad, mask2, avail[:, :1].expand(1, 7, 3))
    torch.testing.assert_close(out[:, :4], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("missing", ["a", "t", "v"])
def test_missing_modality_has_no_effect_and_zero_representation(model, missing):
    xs = inputs()
    pattern = "".join(m for m in "atv" if m != missing)
    mask, avail = full(2, 5, pattern)
    ref, _ = model(*xs, mask, avail)
    k = "atv".index(missing)
    xs2 = list(xs)
    xs2[k] = torch.randn_like(xs[k]) * 50
    xs2[k][0, 0] = float("nan")  # even NaN in an absent sensor must not leak
    out, _ = model(*xs2, mask, avail)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    hs = {m: model.embed(m, x) for m, x in zip("atv", xs2)}
    kms = {m: avail[..., i] for i, m in enumerate("atv")}
    hs[missing] = torch.nan_to_num(hs[missing])
    reps, _ = model.encode(hs, kms)
    assert torch.all(reps[missing] == 0)


def test_per_utterance_missingness_hides_features_from_other_utterances(model):
    xs = inputs(B=1, L=5)
    mask, avail = full(1, 5)
    avail = avail.clone()
    avail[0, 2, 0] = False  # audio missing at utterance 2 only
    ref, _ = model(*xs, mask, avail)
    xs2 = list(xs)
    xs2[0] = xs[0].clone()
    xs2[0][0, 2] = 1e3
    out, _ = model(*xs2, mask, avail)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)


def test_router_weights_are_a_distribution_per_utterance(model):
    _, w = model(*inputs(), *full(2, 5))
    assert w.shape == (2, 5, 3, 3)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5, 3))


def test_specialised_module_equals_masked_model(model):
    xs = inputs()
    for pattern in ("a", "tv", "atv"):
        ref, _ = model(*xs, *full(2, 5, pattern))
        spec, w = MoMKESpecialised(model, pattern)(*[xs["atv".index(m)] for m in pattern],
                                                   torch.ones(2, 5, dtype=torch.bool))
        torch.testing.assert_close(spec, ref, atol=1e-6, rtol=1e-6)
        assert w.shape == (2, 5, len(pattern), 3)


def test_stage1_trains_experts_and_unimodal_heads_only(model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.stage1_parameters(), lr=1e-2)
    a, t, v = inputs()
    mask = torch.ones(2, 5, dtype=torch.bool)
    labels = torch.randint(0, 4, (2, 5))
    loss = sum(task_loss("emotion", model.unimodal_logits(m, x, mask), labels, mask)
               for m, x in zip("atv", (a, t, v)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("experts.") for k in changed)
    assert any(k.startswith("unimodal_heads.") for k in changed)
    assert not any(k.startswith(("routers.", "fusion", "head.")) for k in changed)


def test_checkpoint_reloads_to_identical_outputs(model, tmp_path):
    save_run(tmp_path, model, {"data": {}})
    loaded, config = load_run(tmp_path)
    assert config["model"]["kind"] == "momke"
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    xs, m = inputs(), full(2, 5, "av")
    torch.testing.assert_close(loaded(*xs, *m)[0], model(*xs, *m)[0], atol=0, rtol=0)


def test_train_config_validates_protocol():
    from anymodal.runtime.errors import InputError

    with pytest.raises(InputError, match="--condition"):
        TrainConfig(protocol="fixed")
    with pytest.raises(InputError, match="unknown modality"):
        TrainConfig(protocol="fixed", condition="a,x")
    assert TrainConfig(protocol="fixed", condition="v,a").condition == "av"
    with pytest.raises(InputError, match="patterns-per-step"):
        TrainConfig(patterns_per_step=8)
    assert TrainConfig().lr == 1e-4  # the paper's Adam learning rate (docs/ARCHITECTURE.md §4)
