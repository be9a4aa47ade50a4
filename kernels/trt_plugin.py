"""RouterMix as a TensorRT Quickly Deployable Plugin with an AOT implementation that hands
TensorRT the Triton kernel's PTX; no Python runs at inference. Needs TensorRT >= 10.9 (the
first with `tensorrt.plugin.aot_impl`; 10.7/10.8 have QDP without AOT).

Registered as "anymodal::RouterMix": the ONNX parser maps a node with op_type RouterMix and
attribute plugin_namespace="anymodal" to it. Without AOT QDP (JetPack 6 ships TensorRT 10.3)
`register_router_mix_plugin` registers nothing and the parser inlines the node's ONNX local
function (standard ops) instead — same maths, no fusion.

No `from __future__ import annotations` here: tensorrt.plugin reads the annotations of the
decorated functions with inspect.signature and needs classes, not strings.
"""

from typing import Tuple, Union

from .plugin_id import PLUGIN_ID  # noqa: F401  (re-exported)

_state = {"registered": False, "arch": None}


def qdp_aot_available() -> "tuple[bool, str]":
    """(TensorRT here has AOT Quickly Deployable Plugins, reason when not)."""
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError:
        return False, "this TensorRT has no tensorrt.plugin (Quickly Deployable Plugins need >= 10.7)"
    if not (hasattr(trtp, "aot_impl") and hasattr(trtp, "KernelLaunchParams")):
        return False, (f"TensorRT {trt.__version__} has no AOT plugin implementations "
                       "(tensorrt.plugin.aot_impl needs >= 10.9)")
    return True, ""


def qdp_available() -> bool:
    return qdp_aot_available()[0]


def constant(expr, what: str) -> int:
    """The value of a build-time-constant ShapeExpr (it has no __int__)."""
    if getattr(expr, "is_fake", False) or not expr.is_constant:
        raise ValueError(f"RouterMix plugin needs a constant {what}, got a dynamic dimension")
    return int(expr.constant_value())


def kernel_dtype(trt_dtype) -> str:
    import tensorrt as trt

    if trt_dtype == trt.float16:
        return "fp16"
    if trt_dtype == trt.float32:
        return "fp32"
    raise ValueError(f"RouterMix plugin supports float32 and float16 tensors, not {trt_dtype}")


def _dims(desc) -> list:
    """Constant dims as ints, dynamic ones as None."""
    return [int(e.constant_value()) if e.is_constant else None for e in tuple(desc.shape_expr)]


def router_mix_dims(x, w1, b1, w2, b2, experts, mask) -> "tuple[int, int, int]":
    """(d, E, do) of a RouterMix call, after checking what the kernel assumes: x [*, d],
    w1 [d, d], b1 [d], w2 [d, E], b2 [E], experts [*, E, do] of x's float type, mask [*] bool.
    The kernel indexes these buffers with d, E and do only, so a mismatch would read out of
    bounds instead of failing."""
    import tensorrt as trt

    from .router_mix import BLOCK_E

    d = constant(x.shape_expr[-1], "router width (x's last dim)")
    n_experts = constant(w2.shape_expr[-1], "expert count (w2's last dim)")
    out_dim = constant(experts.shape_expr[-1], "expert width (experts' last dim)")
    rank = len(tuple(x.shape_expr))
    want = {"w1": (w1, [d, d]), "b1": (b1, [d]), "w2": (w2, [d, n_experts]), "b2": (b2, [n_experts])}
    for name, (desc, shape) in want.items():
        if _dims(desc) != shape:
            raise ValueError(f"RouterMix plugin: {name} must be {shape} for router width {d} and "
                             f"{n_experts} experts, got {_dims(desc)}")
    if len(tuple(experts.shape_expr)) != rank + 1 or _dims(experts)[-2] != n_experts:
        raise ValueError(f"RouterMix plugin: experts must be [*, {n_experts}, do] with x's leading "
                         f"dims, got {_dims(experts)} for x {_dims(x)}")
    if len(tuple(mask.shape_expr)) != rank - 1:
        raise ValueError(f"RouterMix plugin: mask must have x's leading dims, got {_dims(mask)} for x {_dims(x)}")
    for name, desc in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("experts", experts)):
        if desc.dtype != x.dtype:
            raise ValueError(f"RouterMix plugin: {name} is {desc.dtype}, x is {x.dtype}: one float type for all")
    if mask.dtype != trt.bool:
        raise ValueError(f"RouterMix plugin: mask must be bool (one byte per row), got {mask.dtype}")
    if n_experts > BLOCK_E:
        raise ValueError(f"RouterMix plugin supports at most {BLOCK_E} experts, got {n_experts}")
    return d, n_experts, out_dim


def kernel_fits(arch: int, hidden: int, out_dim: "int | None" = None) -> "tuple[bool, str]":
    """Whether the AOT kernel for this width and arch can be compiled here and launched by
    TensorRT (shared memory). No Triton, an unknown arch or a kernel too big all mean "no
    fused kernel": the parser then inlines the local function."""
    from anymodal.runtime.errors import UnsupportedArchError

    from .aot import compile_one

    try:
        for dtype in ("fp32", "fp16"):
            compile_one(arch, dtype, hidden, out_dim)
    except ImportError as exc:  # ModuleNotFoundError included: Triton is an optional extra
        return False, f"Triton is not installed, no fused kernel ({exc})"
    except (RuntimeError, UnsupportedArchError) as exc:
        return False, str(exc)
    return True, ""


def register_router_mix_plugin(arch: int, hidden: "int | None" = None) -> "tuple[bool, str]":
    """Register the plugin for the GPU `arch` (e.g. 90) being built for; returns (registered,
    reason when not). Registered once per process (TensorRT refuses a second registration);
    the AOT function compiles for the arch of the latest call. Not registered — and the parser
    inlines the local function — without AOT QDP, or when the kernel for the router width
    `hidden` would not launch."""
    from anymodal.runtime.errors import UnsupportedArchError

    from .aot import ptx_version_for

    ok, why = qdp_aot_available()
    if not ok:
        return False, why
    try:
        ptx_version_for(arch)  # an arch the AOT table does not know: never reach Triton's LLVM
    except UnsupportedArchError as exc:
        return False, str(exc)
    if hidden is not None:
        ok, why = kernel_fits(arch, hidden)
        if not ok:
            return False, why
    _state["arch"] = arch
    if not _state["registered"]:
        _define()
        _state["registered"] = True
    return True, ""


def _define() -> None:
    import tensorrt.plugin as trtp

    from .aot import compile_one
    from .router_mix import BLOCK_N

    @trtp.register(PLUGIN_ID)
    def _desc(x: trtp.TensorDesc, w1: trtp.TensorDesc, b1: trtp.TensorDesc, w2: trtp.TensorDesc,
              b2: trtp.TensorDesc, experts: trtp.TensorDesc, mask: trtp.TensorDesc,
              temperature: float, plugin_namespace: str) -> Tuple[trtp.TensorDesc, trtp.TensorDesc]:
        lead = tuple(x.shape_expr)[:-1]  # [*]
        mixed = trtp.from_shape_expr(lead + (experts.shape_expr[-1],), dtype=x.dtype)  # [*, do]
        weights = trtp.from_shape_expr(lead + (w2.shape_expr[-1],), dtype=x.dtype)  # [*, E]
        return mixed, weights

    # Every attribute _desc declares, in its order: the plugin passes all of them by position
    # (tensorrt.plugin _plugin_class.py, 10.13 l.391/418-419), whatever subset aot_impl accepts.
    @trtp.aot_impl(PLUGIN_ID)
    def _aot(x: trtp.TensorDesc, w1: trtp.TensorDesc, b1: trtp.TensorDesc, w2: trtp.TensorDesc,
             b2: trtp.TensorDesc, experts: trtp.TensorDesc, mask: trtp.TensorDesc, temperature: float,
             plugin_namespace: str, outputs: Tuple[trtp.TensorDesc, trtp.TensorDesc], tactic: int
             ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        dtype = kernel_dtype(x.dtype)
        d, n_experts, out_dim = router_mix_dims(x, w1, b1, w2, b2, experts, mask)
        ptx, _, meta = compile_one(_state["arch"], dtype, d, out_dim, temperature=temperature)
        n_rows = x.shape_expr.numel() // d  # rows = product of the leading dims
        params = trtp.KernelLaunchParams()
        params.grid_x = trtp.cdiv(n_rows, BLOCK_N)
        params.block_x = meta["threads_per_block"]
        params.shared_mem = meta["shared_mem_bytes"]
        extra = trtp.SymIntExprs(4)  # N, D, E, DO — between inputs and outputs
        extra[0] = trtp.SymInt32(n_rows)
        extra[1] = trtp.SymInt32(d)
        extra[2] = trtp.SymInt32(n_experts)
        extra[3] = trtp.SymInt32(out_dim)
        return meta["kernel"], ptx, params, extra
