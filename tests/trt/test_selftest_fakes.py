"""The TensorRT checks of `rt-doctor --selftest` run end to end against the fakes, so the code
a GPU machine runs has run before (build per precision, parity, profile edges, 2,000
predictions from 8 threads, tamper refusal)."""

import pytest

from anymodal import selftest


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return selftest.Bundles(tmp_path_factory.mktemp("selftest"))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_trt_precision_check(fake_gpu, bundles, precision):
    fake_gpu()
    detail = selftest.check_trt_precision(bundles, precision)
    assert "probs max abs diff" in detail
    if precision == "fp32":
        assert "L=257 refused" in detail


@pytest.mark.slow
def test_trt_memory_and_tamper_checks(fake_gpu, bundles):
    _, cuda = fake_gpu()
    assert "2,000 predictions" in selftest.check_trt_memory_threads(bundles)
    assert cuda.stats["leaked_bytes"] == 0
    assert "refused" in selftest.check_trt_tamper(bundles)


def test_trt_checks_skip_without_tensorrt(fake_gpu, bundles):
    fake_gpu(tensorrt=False)
    with pytest.raises(selftest.Skip, match="tensorrt"):
        selftest.check_trt_tamper(bundles)
