"""The Triton RouterMix kernel against the numpy reference over odd shapes (Liger-style)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from anymodal.kernels.reference import router_mix_reference  # noqa: E402
from anymodal.kernels.router_mix import router_mix  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MANY_ROWS = 1000 if DEVICE == "cuda" else 100  # 63 / 7 row blocks of BLOCK_N = 16, the last partial
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float16: dict(atol=2e-2, rtol=2e-2)}


def make(N, D, E, dtype, seed=0, masked_rows=()):
    g = np.random.default_rng(seed)
    arrs = dict(x=g.standard_normal((N, D)), w1=g.standard_normal((D, D)) / np.sqrt(D),
                b1=g.standard_normal(D) * 0.1, w2=g.standard_normal((D, E)) / np.sqrt(D),
                b2=g.standard_normal(E) * 0.1, experts=g.standard_normal((N, E, D)))
    mask = np.ones(N)
    mask[list(masked_rows)] = 0
    # round to the test dtype first, so the reference sees exactly the kernel's inputs
    np_dtype = np.float16 if dtype == torch.float16 else np.float32
    arrs = {k: v.astype(np_dtype) for k, v in arrs.items()}
    return arrs, mask


def report(name, got, ref, tol):
    err = np.abs(got - ref)
    i = np.unravel_index(err.argmax(), err.shape)
    return (f"{name}: max abs error {err.max():.3g} at {i} (got {got[i]:.6g}, ref {ref[i]:.6g}); "
            f"{np.sum(err > tol['atol'] + tol['rtol'] * np.abs(ref))} of {err.size} outside {tol}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("E", [3, 6])
@pytest.mark.parametrize("D", [100, 128, 256])
# MANY_ROWS spans several row blocks (kernel programs) and ends in a partial one; the interpreter
# runs programs one by one, so on CPU 7 blocks stand for 63
@pytest.mark.parametrize("N", [1, 17, MANY_ROWS])
def test_matches_reference(N, D, E, dtype):
    arrs, mask = make(N, D, E, dtype, seed=N + D + E, masked_rows=range(0, N, 7))
    t = {k: torch.from_numpy(v).to(DEVICE) for k, v in arrs.items()}
    temp = 1.0 / E if E == 6 else 1.0  # DERL's initial temperature 1/(k_p+k_s); MoMKE's 1
    mixed, weights = router_mix(t["x"], t["w1"], t["b1"], t["w2"], t["b2"], t["experts"], temp,
                                torch.from_numpy(mask).to(DEVICE))
    ref_mixed, ref_w = router_mix_reference(**arrs, temperature=temp, row_mask=mask)
    tol = TOL[dtype]
    got_m, got_w = mixed.float().cpu().numpy(), weights.float().cpu().numpy()
    assert np.allclose(got_w, ref_w, **tol), report("weights", got_w, ref_w, tol)
    assert np.allclose(got_m, ref_mixed, **tol), report("mixed", got_m, ref_mixed, tol)
    assert np.all(got_m[mask == 0] == 0)  # masked rows are exactly zero


def test_reference_weights_are_distributions_and_temperature_sharpens():
    arrs, mask = make(8, 32, 3, torch.float32)
    _, w1 = router_mix_reference(**arrs, temperature=1.0, row_mask=mask)
    _, w_cold = router_mix_reference(**arrs, temperature=0.1, row_mask=mask)
    np.testing.assert_allclose(w1.sum(1), 1)
    assert np.all(w_cold.max(1) >= w1.max(1))


def test_shape_errors_are_clear():
    arrs, mask = make(4, 16, 3, torch.float32)
    t = {k: torch.from_numpy(v) for k, v in arrs.items()}
    with pytest.raises(ValueError, match="shapes disagree"):
        router_mix(t["x"], t["w1"][:8], t["b1"], t["w2"], t["b2"], t["experts"], 1.0, torch.ones(4))


def test_reference_is_what_the_model_computes():
    """The kernel's reference equals MoMKE's router + mix path (RouterMLP, router_mix)."""
    from anymodal.train.models.layers import RouterMLP
    from anymodal.train.models.layers import router_mix as torch_router_mix

    torch.manual_seed(0)
    router = RouterMLP(24, 3).double()
    x, experts = torch.randn(10, 24, dtype=torch.float64), torch.randn(10, 3, 24, dtype=torch.float64)
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    with torch.no_grad():
        mixed, w = torch_router_mix(router(x), experts, 0.5, mask)
    ref_mixed, ref_w = router_mix_reference(
        x.numpy(), router.fc1.weight.detach().numpy().T, router.fc1.bias.detach().numpy(),
        router.fc2.weight.detach().numpy().T, router.fc2.bias.detach().numpy(), experts.numpy(), 0.5,
        mask.numpy())
    np.testing.assert_allclose(w.numpy(), ref_w, atol=1e-12)
    np.testing.assert_allclose(mixed.numpy(), ref_mixed, atol=1e-12)


@pytest.mark.gpu
def test_momke_uses_the_kernel_on_cuda_and_matches_the_plain_path():
    from anymodal.train.models.momke import MoMKE, MoMKEConfig

    model = MoMKE(MoMKEConfig(input_dims=(6, 10, 8), hidden=32, depth=1, output_dim=4)).eval().cuda()
    xs = [torch.randn(2, 5, d, device="cuda") for d in (6, 10, 8)]
    mask = torch.ones(2, 5, dtype=torch.bool, device="cuda")
    avail = torch.ones(2, 5, 3, dtype=torch.bool, device="cuda")
    with torch.no_grad():
        fused, _ = model(*xs, mask, avail)  # no grad on CUDA: the Triton kernel
    plain, _ = model(*xs, mask, avail)  # grad enabled: the plain path
    torch.testing.assert_close(fused, plain.detach(), atol=1e-4, rtol=1e-4)
