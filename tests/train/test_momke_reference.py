"""rt-bench's reference rows compute the authors' maths: the reference module against a plain
re-implementation written here from the paper (Eq. 13-14, 19-20) and the authors' code (their
block y = MSA(x), x + y + MLP(y); fusion head(x + ReLU(W x + b))), in a different form: per
conversation and modality, only the present utterances are gathered and run (the authors' -inf
masks and NaN -> 0 fix-up become "absent keys do not exist"), per head in a loop."""

import math

import pytest
import torch
from torch import nn

from anymodal.train.models.momke import MoMKE, MoMKEConfig
from anymodal.train.models.momke_reference import ReferenceMoMKE, build_reference, reference_callable

DIMS = (6, 10, 8)


def tiny(preset="authors", seed=0):
    torch.manual_seed(seed)
    return MoMKE(MoMKEConfig.preset_config(preset, input_dims=DIMS, hidden=16, depth=2, heads=2)).eval()


def plain_authors(model, xs, mask, avail):
    """Logits [B, L, out] of the authors' MoMKE (no LN, no positions, no output projection)."""
    ex, d, H = model.experts, model.cfg.hidden, model.cfg.heads
    hd = d // H
    B, L = mask.shape
    out = torch.zeros(B, L, model.cfg.output_dim)
    for b in range(B):
        blocks = []
        for i, m in enumerate("atv"):
            rows = torch.nonzero(avail[b, :, i] & mask[b]).flatten()
            rep = torch.zeros(L, d)
            if len(rows):
                h = xs[i][b, rows] @ model.proj[m].weight.T + model.proj[m].bias  # [n, d]
                r = model.routers[m]
                w = torch.softmax(F_gelu(h @ r.fc1.weight.T + r.fc1.bias) @ r.fc2.weight.T + r.fc2.bias, -1)
                for e in range(ex.E):
                    z = h
                    for j in range(ex.Q):
                        q, k, v = (z @ W[e, j] + bias[e, j] for W, bias in
                                   ((ex.q_w, ex.q_b), (ex.k_w, ex.k_b), (ex.v_w, ex.v_b)))
                        heads = [torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(hd), -1) @ v[:, s]
                                 for s in (slice(c * hd, (c + 1) * hd) for c in range(H))]
                        y = torch.cat(heads, -1)
                        z = z + y + (F_gelu(y @ ex.fc1_w[e, j] + ex.fc1_b[e, j]) @ ex.fc2_w[e, j] + ex.fc2_b[e, j])
                    rep[rows] += w[:, e:e + 1] * z
            blocks.append(rep)
        x = torch.cat(blocks, -1)  # [L, 3d]; absent and padded utterances are zero blocks
        hidden = x + torch.relu(x @ model.fusion.weight.T + model.fusion.bias)
        out[b] = hidden @ model.head.weight.T + model.head.bias
    return out


def F_gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))  # exact GELU, as nn.GELU's default


def inputs(seed=1, B=3, L=6):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, L, d, generator=g) for d in DIMS]
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 4:] = False  # a shorter conversation
    avail = torch.rand(B, L, 3, generator=g) < 0.6
    avail[2, :, 1] = False  # one conversation without text at all (its attention rows are all -inf)
    avail[0, 0] = False  # an utterance with nothing
    zeroed = [x * avail[..., i, None] for i, x in enumerate(xs)]  # the authors zero absent features
    return zeroed, mask, avail


def test_reference_computes_the_authors_maths_on_the_authors_preset():
    model = tiny("authors")
    xs, mask, avail = inputs()
    with torch.no_grad():
        ref = ReferenceMoMKE(model)(*xs, mask, avail)
        plain = plain_authors(model, xs, mask, avail)
    torch.testing.assert_close(ref, plain, atol=1e-5, rtol=1e-5)


def test_the_parity_check_sees_a_wrong_expert():
    model = tiny("authors")
    xs, mask, avail = inputs()
    ref = ReferenceMoMKE(model)
    with torch.no_grad():
        ref.blocks[1][2].fc2.bias += 0.1  # expert 2, block 1
        assert not torch.allclose(ref(*xs, mask, avail), plain_authors(model, xs, mask, avail), atol=1e-3)


def test_int8_reference_quantises_every_linear_and_stays_close():
    model = tiny("paper")
    xs, mask, avail = inputs()
    fp32 = reference_callable(model, [*xs, mask, avail], "eager")()
    kinds = [type(m) for m in build_reference(model, "int8").modules()]
    # 3 projections, 6 router layers, 2 depth x 3 experts x (q, k, v, out, fc1, fc2), fusion, head
    assert kinds.count(torch.ao.nn.quantized.dynamic.Linear) == 3 + 6 + 36 + 2
    assert nn.Linear not in kinds
    int8 = reference_callable(model, [*xs, mask, avail], "int8")()
    assert 0 < (int8 - fp32).abs().max() < 0.1 * fp32.abs().max()  # quantised, and close


def test_unknown_reference_mode_is_named():
    with pytest.raises(ValueError, match="unknown reference mode 'fp8'"):
        reference_callable(tiny(), [], "fp8")
