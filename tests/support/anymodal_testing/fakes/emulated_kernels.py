"""What the fake engine runs for a plugin layer, by the kernel name the AOT function returned:
the numpy reference of anymodal's kernels, indexed with the scalar arguments TensorRT would pass
(evaluated from the AOT function's symbolic expressions), as the PTX would be."""

from __future__ import annotations

from anymodal.kernels.reference import router_mix_reference

from .plugin_run import KERNEL_EMULATORS


def router_mix(inputs, scalars, attrs):
    """inputs x [*, D], w1, b1, w2, b2, experts [*, E, DO], mask [*]; scalars N, D, E, DO."""
    x, w1, b1, w2, b2, experts, mask = inputs
    n, d, e, do = scalars
    mixed, weights = router_mix_reference(x.reshape(n, d), w1, b1, w2, b2, experts.reshape(n, e, do),
                                          float(attrs["temperature"]), mask.reshape(n))
    return mixed.astype(x.dtype), weights.astype(x.dtype)  # [N, DO], [N, E]


KERNEL_EMULATORS["router_mix_kernel"] = router_mix
