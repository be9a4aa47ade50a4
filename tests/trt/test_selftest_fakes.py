"""The TensorRT checks of `rt-doctor --selftest` run end to end against the fakes, so the code
a GPU machine runs has run before (builds per precision with rt-build's parity check, profile
edges, the masked graph with mixed availability, a fused bundle's plugin layers, streaming
re-scoring, 2,000 predictions from 8 threads, tamper refusal). The masked, fused and
streaming checks were added after the first GPU run, and the memory check once called
mem_get_info() with no context."""

import pytest

from anymodal import selftest, selftest_trt


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return selftest.Bundles(tmp_path_factory.mktemp("selftest"))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_trt_precision_check(fake_gpu, bundles, precision):
    fake_gpu()
    detail = selftest_trt.check_trt_precision(bundles, precision)
    assert "probs max abs diff" in detail and "rt-build parity max" in detail
    if precision == "fp32":
        assert "L=257 refused" in detail
    if precision == "int8":
        assert "calibrated on train split of iemocap4" in detail


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_masked_graph_with_mixed_availability(fake_gpu, bundles):
    fake_gpu()
    assert "all 7 patterns" in selftest_trt.check_trt_masked_mixed(bundles)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_streaming_rescores_on_tensorrt(fake_gpu, bundles):
    fake_gpu()
    assert "re-scored on TensorRT = ORT streaming" in selftest_trt.check_trt_streaming(bundles)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_fused_bundle_has_plugin_layers_when_registered(fake_gpu, bundles, tmp_path, monkeypatch):
    import anymodal.kernels.aot as aot

    monkeypatch.setattr(aot, "compile_one", lambda *a, **k: (".version 8.0\n", b"", {
        "kernel": "router_mix_kernel", "threads_per_block": 128, "shared_mem_bytes": 16384}))
    fake_gpu("10.13.3")
    assert "plugin layers in all 8 RouterMix graphs" in selftest_trt.check_trt_fused_plugin(
        bundles.sharing_exports(tmp_path))


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_fused_bundle_inlined_without_plugin(fake_gpu, bundles, tmp_path):
    fake_gpu("10.3.0")  # no tensorrt.plugin: the parser inlines the local functions
    assert "plugin not registered" in selftest_trt.check_trt_fused_plugin(bundles.sharing_exports(tmp_path))


@pytest.mark.slow
def test_fused_check_fails_when_the_parser_ignores_the_plugin(fake_gpu, bundles, tmp_path, monkeypatch):
    """The failure this check exists for: a registered plugin, but the engines inlined the function."""
    import json

    import anymodal.kernels.aot as aot
    from anymodal.export import trt_build

    monkeypatch.setattr(aot, "compile_one", lambda *a, **k: (".version 8.0\n", b"", {
        "kernel": "router_mix_kernel", "threads_per_block": 128, "shared_mem_bytes": 16384}))
    monkeypatch.setattr(trt_build, "_plugin_layers", lambda trt, network: 0)
    fake_gpu("10.13.3")
    b = bundles.sharing_exports(tmp_path)  # the fused bundle exported once; engines built here
    with pytest.raises(AssertionError, match="plugin layers in \\[\\], RouterMix nodes in"):
        selftest_trt.check_trt_fused_plugin(b)
    _, engines = b.built("fused", "fp32")
    assert json.loads((engines / "engines.json").read_text())["plugin_registered"] is True


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_memory_check_reads_free_memory_with_a_context(fake_gpu, bundles):
    _, cuda = fake_gpu()
    with pytest.raises(cuda.LogicError):  # the fake's rule: cuMemGetInfo needs a current context
        cuda.mem_get_info()
    assert "2,000 predictions" in selftest_trt.check_trt_memory_threads(bundles)
    assert cuda.stats["leaked_bytes"] == 0 and cuda.Context.get_current() is None


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_tamper_check(fake_gpu, bundles):
    fake_gpu()
    assert "refused" in selftest_trt.check_trt_tamper(bundles)


def test_trt_checks_skip_without_tensorrt(fake_gpu, bundles):
    fake_gpu(tensorrt=False)
    for name, check in selftest_trt.checks(bundles):
        with pytest.raises(selftest.Skip, match="tensorrt"):
            check()


def test_budget_row_fails_past_the_budget(monkeypatch):
    monkeypatch.setattr(selftest, "checks", lambda bundles: [("slow", lambda: "ok")])
    *_, budget = selftest.run_selftest(progress=None, budget_s=-1)
    assert budget["check"] == "budget" and budget["status"] == "fail"
