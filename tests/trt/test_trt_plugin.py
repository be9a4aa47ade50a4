"""The RouterMix QDP against the fake tensorrt.plugin (tests/support/anymodal_testing/fakes), which checks what the real
module checks. Each test names the defect it pins; all fail on 73efad7's plugin."""

import pytest

from anymodal.kernels import trt_plugin
from anymodal_testing import fakes


@pytest.fixture
def trt_env(monkeypatch):
    def make(version="10.13.3"):
        trt, _ = fakes.install(monkeypatch, version=version)
        monkeypatch.setattr(trt_plugin, "_state", {"registered": False, "arch": None}, raising=False)
        monkeypatch.setattr(trt_plugin, "_registered", set(), raising=False)  # 73efad7's registry
        calls = []

        def fake_compile(arch, dtype, hidden, out_dim=None, temperature=1.0, ptx_version=None):
            calls.append((arch, dtype, hidden, out_dim or hidden, temperature))
            return ".version 8.0\n", b"", {"kernel": "router_mix_kernel", "threads_per_block": 128,
                                            "shared_mem_bytes": 16384}

        import anymodal.kernels.aot as aot

        monkeypatch.setattr(aot, "compile_one", fake_compile)
        return trt, calls

    return make


SHAPES = [("B", "L", 16), (16, 16), (16,), (16, 3), (3,), ("B", "L", 3, 24), ("B", "L")]


def test_register_and_aot_pass_qdp_validation(trt_env):
    """Defect: no return annotations (and string annotations from `from __future__`)."""
    trt, calls = trt_env()
    assert trt_plugin.register_router_mix_plugin(90) == (True, "")
    d = trt.plugin.QDP_REGISTRY[trt_plugin.PLUGIN_ID]
    assert d["num_outputs"] == 2 and d["aot"] is not None
    assert d["tensors"] == ["x", "w1", "b1", "w2", "b2", "experts", "mask"]


def test_output_width_is_the_experts_width(trt_env):
    """Defect: mixed = x.like() assumed experts' width == router width (24 != 16 here)."""
    trt, calls = trt_env()
    trt_plugin.register_router_mix_plugin(90)
    outs, (name, ptx, params, extra) = trt.plugin._build_plugin(
        trt_plugin.PLUGIN_ID, SHAPES, trt.float32, {"temperature": 2.0, "plugin_namespace": "anymodal"})
    assert outs[0].shape_expr[-1].constant_value() == 24 and outs[1].shape_expr[-1].constant_value() == 3
    assert [e.constant_value() for e in list(extra)[1:]] == [16, 3, 24]  # D, E, DO
    assert not extra[0].is_constant  # N = B*L stays symbolic
    assert extra[0]._eval({"B": 2, "L": 5}) == 10 and params.grid_x._eval({"B": 2, "L": 5}) == 1
    assert calls == [(90, "fp32", 16, 24, 2.0)]


def test_fp16_tensors_compile_the_fp16_kernel(trt_env):
    """Defect: x.dtype == np.float16 compared a trt.DataType with a numpy type (always False)."""
    trt, calls = trt_env()
    trt_plugin.register_router_mix_plugin(87)
    trt.plugin._build_plugin(trt_plugin.PLUGIN_ID, SHAPES, trt.float16,
                             {"temperature": 1.0, "plugin_namespace": "anymodal"})
    assert calls[0][:2] == (87, "fp16")


def test_dynamic_router_width_is_a_clear_error(trt_env):
    """Defect: int(ShapeExpr) — ShapeExpr has no __int__; a non-constant width is refused by name."""
    trt, _ = trt_env()
    trt_plugin.register_router_mix_plugin(90)
    shapes = [("B", "L", "D")] + SHAPES[1:]
    with pytest.raises(ValueError, match="constant router width"):
        trt.plugin._build_plugin(trt_plugin.PLUGIN_ID, shapes, trt.float32,
                                 {"temperature": 1.0, "plugin_namespace": "anymodal"})


@pytest.mark.parametrize("version", ["10.3.0", "10.7.0", "10.8.1"])
def test_without_aot_qdp_nothing_is_registered(trt_env, version):
    """Defect: 10.7/10.8 have tensorrt.plugin but no aot_impl; the register half ran first."""
    trt, _ = trt_env(version)
    ok, why = trt_plugin.register_router_mix_plugin(87)
    assert not ok and ("10.9" in why or "10.7" in why)
    if hasattr(trt, "plugin"):
        assert trt.plugin.QDP_REGISTRY == {}


def test_second_arch_registers_once_and_compiles_for_the_latest(trt_env):
    """Defect: a second registration raised; the AOT closure kept the first arch."""
    trt, calls = trt_env()
    assert trt_plugin.register_router_mix_plugin(87)[0]
    assert trt_plugin.register_router_mix_plugin(90)[0]
    trt.plugin._build_plugin(trt_plugin.PLUGIN_ID, SHAPES, trt.float32,
                             {"temperature": 1.0, "plugin_namespace": "anymodal"})
    assert calls[0][0] == 90


def test_too_wide_router_is_not_registered(trt_env, monkeypatch):
    """Shared memory above 48 KiB cannot be launched by TensorRT's AOT launcher: not registered
    (the parser inlines the local function), with the reason."""
    trt, _ = trt_env()
    monkeypatch.setattr(trt_plugin, "kernel_fits", lambda arch, d, do=None: (False, "65536 B of shared memory"))
    assert trt_plugin.register_router_mix_plugin(90, hidden=512) == (False, "65536 B of shared memory")
    assert trt.plugin.QDP_REGISTRY == {}


def test_fake_refuses_what_the_old_plugin_did(trt_env):
    """The fake is strict where TensorRT is: a register function without a return annotation,
    string annotations and a list shape are all refused (so the tests above can fail)."""
    trt, _ = trt_env()
    trtp = trt.plugin

    def no_return(x: trtp.TensorDesc, t: float):
        return x.like()

    with pytest.raises(ValueError, match="No return annotation"):
        trtp.register("a::b")(no_return)

    def strings(x: "trtp.TensorDesc") -> "trtp.TensorDesc":
        return x

    with pytest.raises(TypeError):
        trtp.register("a::c")(strings)
    with pytest.raises(TypeError):
        int(trtp.ShapeExpr(3))
    with pytest.raises(TypeError):
        trtp.from_shape_expr([trtp.ShapeExpr(3)], trt.float32)


def test_aot_takes_every_registered_attribute_by_position(trt_env):
    """Blocker: the real plugin calls aot_impl(*inputs, *all attributes, outputs,
    tactic) by position (_plugin_class.py 10.13 l.391/418-419); _aot without
    plugin_namespace got 11 arguments for 10 parameters on every fused graph."""
    trt, calls = trt_env()
    trt_plugin.register_router_mix_plugin(90)
    d = trt.plugin.QDP_REGISTRY[trt_plugin.PLUGIN_ID]
    assert list(d["attrs"]) == ["temperature", "plugin_namespace"]  # the exporter writes both
    outs, res = trt.plugin._build_plugin(trt_plugin.PLUGIN_ID, SHAPES, trt.float32,
                                         {"temperature": 0.5, "plugin_namespace": b"anymodal"})
    assert res[0] == "router_mix_kernel" and calls == [(90, "fp32", 16, 24, 0.5)]


def test_fake_passes_attributes_like_tensorrt(trt_env):
    """The fake's rule, on a toy plugin: an aot_impl taking a subset of the attributes passes
    the decorator (as in _validate.py) but fails at build time, as in TensorRT."""
    trt, _ = trt_env()
    trtp = trt.plugin
    from typing import Tuple, Union

    @trtp.register("t::p")
    def desc(x: trtp.TensorDesc, a: float, b: str) -> trtp.TensorDesc:
        return x.like()

    @trtp.aot_impl("t::p")
    def aot(x: trtp.TensorDesc, a: float, outputs: Tuple[trtp.TensorDesc], tactic: int
            ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        return "k", "", trtp.KernelLaunchParams(), trtp.SymIntExprs(0)

    with pytest.raises(TypeError, match="positional"):
        trtp._build_plugin("t::p", [(4,)], trt.float32, {"a": 1.0, "b": b"x"})
    # a field the node lacks is skipped (onnx-tensorrt loadFields); the register function,
    # called by keyword with the fields there are, then misses it
    with pytest.raises(TypeError, match="'b'"):
        trtp._build_plugin("t::p", [(4,)], trt.float32, {"a": 1.0})


@pytest.mark.parametrize("index, shape, dtype, what", [
    (1, (16, 8), None, "w1 must be \\[16, 16\\]"),
    (2, (8,), None, "b1 must be \\[16\\]"),
    (3, (8, 3), None, "w2 must be \\[16, 3\\]"),
    (5, ("B", "L", 4, 24), None, "experts must be"),
    (1, (16, 16), "HALF", "w1 is"),
    (6, ("B", "L"), "FLOAT", "mask must be bool"),
])
def test_weight_shapes_and_types_are_checked(trt_env, index, shape, dtype, what):
    """w1 = [D, D] and the weight dtypes were unchecked: the kernel indexes
    the buffers with d, E, do and would read out of bounds."""
    trt, calls = trt_env()
    trt_plugin.register_router_mix_plugin(90)
    shapes = list(SHAPES)
    shapes[index] = shape
    dtypes = [trt.float32] * 6 + [trt.bool]
    if dtype:
        dtypes[index] = getattr(trt.DataType, dtype)
    with pytest.raises(ValueError, match=what):
        trt.plugin._build_plugin(trt_plugin.PLUGIN_ID, shapes, trt.float32,
                                 {"temperature": 1.0, "plugin_namespace": "anymodal"}, dtypes)
    assert calls == []  # refused before compiling


def test_arch_newer_than_the_aot_table_is_not_registered(trt_env):
    """An unknown arch (sm_130) would reach Triton's LLVM with a PTX ISA too old for
    it, which aborts the process; it is refused with the reason and nothing is registered."""
    trt, calls = trt_env()
    ok, why = trt_plugin.register_router_mix_plugin(130)
    assert not ok and "sm_130" in why
    assert trt.plugin.QDP_REGISTRY == {} and calls == []
