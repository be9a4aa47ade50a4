"""RouterMix as a TensorRT Quickly Deployable Plugin (TensorRT >= 10.7) with an AOT
implementation that hands TensorRT the Triton kernel's PTX; no Python runs at inference.

Registered as "anymodal::RouterMix": the ONNX parser maps a node with op_type RouterMix and
attribute plugin_namespace="anymodal" to it. Older TensorRT (JetPack 6 ships 10.3) has no
`tensorrt.plugin` module: there `register_router_mix_plugin` returns False and the parser
inlines the node's ONNX local function (standard ops) instead — same maths, no fusion.

Written against TensorRT's documented `tensorrt.plugin` API; it needs a GPU and TensorRT,
which the development machines do not have, so it is exercised by the `gpu` tests only.
"""

from __future__ import annotations

from .plugin_id import PLUGIN_ID

_registered: set[int] = set()


def qdp_available() -> bool:
    try:
        import tensorrt.plugin  # noqa: F401  (TensorRT >= 10.7)
    except ImportError:
        return False
    return True


def register_router_mix_plugin(arch: int) -> bool:
    """Register the plugin for compute capability `arch` (e.g. 87). False if this TensorRT
    has no Quickly Deployable Plugins (the parser then inlines the local function)."""
    if not qdp_available():
        return False
    if arch in _registered:
        return True
    import numpy as np
    import tensorrt.plugin as trtp

    from .aot import compile_one
    from .router_mix import BLOCK_E, BLOCK_N

    @trtp.register(PLUGIN_ID)
    def _desc(x: trtp.TensorDesc, w1: trtp.TensorDesc, b1: trtp.TensorDesc, w2: trtp.TensorDesc,
              b2: trtp.TensorDesc, experts: trtp.TensorDesc, mask: trtp.TensorDesc,
              temperature: float, plugin_namespace: str):
        mixed = x.like()  # [*, d]: MoMKE/DERL experts keep the router width
        weights = trtp.from_shape_expr(list(x.shape_expr)[:-1] + [w2.shape_expr[-1]], dtype=x.dtype)
        return mixed, weights

    @trtp.aot_impl(PLUGIN_ID)
    def _aot(x: trtp.TensorDesc, w1: trtp.TensorDesc, b1: trtp.TensorDesc, w2: trtp.TensorDesc,
             b2: trtp.TensorDesc, experts: trtp.TensorDesc, mask: trtp.TensorDesc,
             temperature: float, plugin_namespace: str, outputs, tactic):
        dtype = "fp16" if x.dtype == np.float16 else "fp32"
        d = int(x.shape_expr[-1])
        if int(w2.shape_expr[-1]) > BLOCK_E:
            raise ValueError(f"RouterMix plugin supports at most {BLOCK_E} experts")
        ptx, _, meta = compile_one(arch, dtype, d, temperature=temperature)
        n_rows = x.shape_expr.numel() // d  # rows = product of the leading dims
        params = trtp.KernelLaunchParams()
        params.grid_x = trtp.cdiv(n_rows, BLOCK_N)
        params.block_x = meta["threads_per_block"]
        params.shared_mem = meta["shared_mem_bytes"]
        extra = trtp.SymIntExprs(4)  # N, D, E, DO — between inputs and outputs
        extra[0] = trtp.SymInt32(n_rows)
        extra[1] = trtp.SymInt32(d)
        extra[2] = trtp.SymInt32(int(w2.shape_expr[-1]))
        extra[3] = trtp.SymInt32(d)
        return meta["kernel"], ptx, params, extra

    _registered.add(arch)
    return True
