"""TensorRTBackend.close() and what happens without it. Each test fails on the backend
before the fix: close() popped the context and then let the TensorRT execution contexts,
engines and streams go with no context current; a backend dropped without close() had no
finalizer; run() after close() silently re-created the sessions."""

import gc

import numpy as np
import pytest

from anymodal.export.trt_build import build_engines
from anymodal.runtime import Runtime
from anymodal.runtime.backends.tensorrt import TensorRTBackend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import BackendClosedError


def quiet(*_):
    pass


def feeds(L=5):
    g = np.random.default_rng(0)
    return {"audio": g.standard_normal((1, L, 6)).astype(np.float32),
            "visual": g.standard_normal((1, L, 8)).astype(np.float32), "mask": np.ones((1, L), bool)}


@pytest.fixture
def built(fake_gpu, bundle_copy):
    trt, cuda = fake_gpu()
    build_engines(bundle_copy, "fp32", progress=quiet)
    trt.released.clear()
    trt.released_without_context.clear()
    return bundle_copy, trt, cuda


def test_close_releases_tensorrt_objects_with_the_context_pushed(built):
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    be.run("av", feeds())
    be.run("a", {k: v for k, v in feeds().items() if k != "visual"})
    be.close()
    assert sorted(trt.released) == ["ICudaEngine"] * 2 + ["IExecutionContext"] * 2  # released now, not later
    assert trt.released_without_context == []
    assert cuda.stats["live"] == 0 and cuda.Context.get_current() is None


def test_run_after_close_raises_instead_of_reloading(built):
    path, trt, cuda = built
    rt = Runtime(path, backend="tensorrt")
    rt.predict(audio=feeds()["audio"][0])
    rt.close()
    allocs = cuda.stats["alloc"]
    with pytest.raises(BackendClosedError, match="after close"):
        rt.predict(audio=feeds()["audio"][0])
    assert cuda.stats["alloc"] == allocs and cuda.stats["live"] == 0


def test_a_backend_dropped_without_close_frees_everything(built):
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    be.run("av", feeds())
    assert cuda.stats["live"] > 0
    del be
    gc.collect()
    assert cuda.stats["live"] == 0 and cuda.stats["leaked_bytes"] == 0
    assert "IExecutionContext" in trt.released and trt.released_without_context == []
