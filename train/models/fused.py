"""RouterMix as one exportable op: eager PyTorch computes the standard maths; the ONNX export
emits a single `trt.plugins::RouterMix` node (TensorRT plugin naming) whose standard-op
definition is attached as a model-local function by `anymodal.export.plugin_function`."""

from __future__ import annotations

import torch

from anymodal.kernels.plugin_id import PLUGIN_DOMAIN, PLUGIN_NAME, PLUGIN_NAMESPACE

from .layers import RouterMLP, router_mix


class RouterMixOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, experts, mask, temperature: float):
        # x [*, d]; w1 [d, d] (in, out); w2 [d, E]; experts [*, E, do]; mask [*] bool
        logits = torch.nn.functional.gelu(x @ w1 + b1) @ w2 + b2  # [*, E]
        return router_mix(logits, experts, temperature, mask)

    @staticmethod
    def symbolic(g, x, w1, b1, w2, b2, experts, mask, temperature: float):
        return g.op(f"{PLUGIN_DOMAIN}::{PLUGIN_NAME}", x, w1, b1, w2, b2, experts, mask,
                    temperature_f=float(temperature), plugin_namespace_s=PLUGIN_NAMESPACE, outputs=2)


def fused_router_mix(router: RouterMLP, x: torch.Tensor, experts: torch.Tensor, mask: torch.Tensor,
                     temperature: float = 1.0):
    """Same result as router_mix(router(x), experts, temperature, mask), as one op."""
    return RouterMixOp.apply(x, router.fc1.weight.t(), router.fc1.bias, router.fc2.weight.t(),
                             router.fc2.bias, experts, mask, temperature)
