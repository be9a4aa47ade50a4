"""The TensorRT backend against the fake tensorrt/pycuda (tests/support/anymodal_testing/fakes); engines execute through
ONNX Runtime on the bytes in fake device memory, so wrong dtypes or stale buffers show up as
wrong numbers. Defects pinned here, each failing on 73efad7's backend: feeds copied
in their own dtype; set_input_shape / execute_async_v3 results ignored; cuda.mem_alloc per
call; buffers freed after the context was popped (leak from other threads); pageable host
memory; engines.json never read (tampered, missing, interrupted); profile bounds unchecked;
device 0 hard-coded."""

import json
import shutil
import threading

import numpy as np
import onnxruntime as ort
import pytest

from anymodal.export.trt_build import build_engines
from anymodal.runtime import Runtime
from anymodal.runtime.backends.tensorrt import TensorRTBackend
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import BundleError, InputError


def quiet(*_):
    pass


def feeds(L=7, B=1, seed=0, dtype=np.float32):
    g = np.random.default_rng(seed)
    return {"audio": g.standard_normal((B, L, 6)).astype(dtype), "visual": g.standard_normal((B, L, 8)).astype(dtype),
            "mask": np.ones((B, L), bool)}


def ort_run(bundle: Bundle, graph, f):
    s = ort.InferenceSession(str(bundle.graph_path(graph)))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, f)))


@pytest.fixture
def built(fake_gpu, bundle_copy):
    trt, cuda = fake_gpu()
    build_engines(bundle_copy, "fp32", progress=quiet)
    return bundle_copy, trt, cuda


def test_results_equal_onnx_runtime_and_buffers_are_reused(built):
    """Defect: cuda.mem_alloc for every input and output on every call; pageable copies."""
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    ref = ort_run(Bundle(path), "av", feeds())
    out = be.run("av", feeds())
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=1e-6)
    allocs = cuda.stats["alloc"]
    for seed in range(20):
        be.run("av", feeds(seed=seed))
    assert cuda.stats["alloc"] == allocs  # same shapes: no new device memory
    assert cuda.stats["pageable_copies"] == 0
    be.close()
    assert cuda.stats["live"] == 0


def test_calls_from_other_threads_leak_nothing(built):
    """Defect: buffers freed after the context pop; on a thread other than the one that made the
    Runtime pycuda cannot activate the context and leaks the memory."""
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    errors = []

    def work(seed):
        try:
            for k in range(5):
                be.run("av", feeds(L=3 + seed + k, seed=seed))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    be.close()
    assert cuda.stats["leaked_bytes"] == 0 and cuda.stats["live"] == 0


def test_feeds_are_cast_to_the_engines_dtypes(fake_gpu, fp16_bundle_src, tmp_path):
    """Defect: fp32 bytes copied into the fp16 input buffers of a TensorRT 11 fp16 engine."""
    trt, cuda = fake_gpu(version="11.4.0")
    path = shutil.copytree(fp16_bundle_src, tmp_path / "b")
    build_engines(path, "fp16", progress=quiet)
    be = TensorRTBackend(Bundle(path, "fp16"))
    f32 = feeds()
    out = be.run("av", f32)  # the runtime's fp32 feeds, as an fp32 bundle would give them
    ref = ort_run(Bundle(path, "fp16"), "av", {k: v.astype(np.float16) if v.dtype == np.float32 else v
                                              for k, v in f32.items()})
    np.testing.assert_allclose(out["logits"].astype(np.float32), ref["logits"].astype(np.float32), rtol=1e-3)
    big = dict(f32, audio=f32["audio"] * 1e6)
    with pytest.raises(InputError, match="fp16 range"):
        be.run("av", big)


test_feeds_are_cast_to_the_engines_dtypes = pytest.mark.slow(test_feeds_are_cast_to_the_engines_dtypes)


def test_shape_outside_the_profile_is_an_input_error(built):
    """Defect: set_input_shape's False ignored -> numpy 'negative dimensions' or garbage."""
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    with pytest.raises(InputError, match=r"audio.*outside.*\(16, 256, 6\)"):
        be.run("av", feeds(L=300))
    with pytest.raises(InputError, match="outside"):
        be.run("av", feeds(B=17))
    np.testing.assert_allclose(be.run("av", feeds(L=256, B=16))["logits"].shape[:2], (16, 256))


def test_engine_refusing_a_shape_is_an_input_error(built, monkeypatch):
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    be.index["profiles"] = {}  # bounds unknown: TensorRT's own refusal must still surface
    with pytest.raises(InputError, match="TensorRT refused shape"):
        be.run("av", feeds(L=300))


def test_failed_enqueue_is_an_error_not_garbage(built, monkeypatch):
    path, trt, cuda = built
    be = TensorRTBackend(Bundle(path))
    monkeypatch.setattr(trt.IExecutionContext, "execute_async_v3", lambda self, h: False)
    with pytest.raises(BundleError, match="failed to enqueue"):
        be.run("av", feeds())


def test_modified_plan_is_refused_and_auto_falls_through(built):
    """Defect: engines.json (sha256 per plan) written but never read."""
    path, trt, cuda = built
    folder = next((path / "engines").iterdir())
    plan = folder / "av.plan"
    plan.write_bytes(plan.read_bytes() + b"x")
    with pytest.raises(BundleError, match="sha256"):
        TensorRTBackend(Bundle(path))
    rt = Runtime(path, backend="auto")
    assert rt.backend_name == "ort-cpu" and any("sha256" in n for n in rt.backend_notes)


def test_folder_without_engines_json_is_not_selected(built):
    path, trt, cuda = built
    folder = next((path / "engines").iterdir())
    (folder / "engines.json").unlink()
    with pytest.raises(BundleError, match="interrupted"):
        TensorRTBackend(Bundle(path))


def test_engines_of_another_device_model_are_not_used(fake_gpu, bundle_copy):
    """Defect: key sm<cc>-trt<ver> mixed devices of the same compute capability."""
    fake_gpu(devices=(("NVIDIA H100 80GB HBM3", (9, 0)),))
    build_engines(bundle_copy, "fp32", progress=quiet)
    fake_gpu(devices=(("NVIDIA H200", (9, 0)),))
    with pytest.raises(BundleError, match="NVIDIA H200"):
        TensorRTBackend(Bundle(bundle_copy))


def test_runtime_runs_tensorrt_end_to_end(built):
    path, trt, cuda = built
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    a = Runtime(path, backend="tensorrt").predict(audio=x)
    b = Runtime(path, backend="ort-cpu").predict(audio=x)
    assert a.backend == "tensorrt"
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    meta = json.loads(next((path / "engines").iterdir()).joinpath("engines.json").read_text())
    assert meta["precision"] == "fp32"


def test_engine_precision_follows_the_bundle_precision(fake_gpu, bundle_copy):
    """Defect: the engine folder was chosen by a fixed preference (fp16 first) whatever
    precision the Runtime was opened with."""
    fake_gpu()
    build_engines(bundle_copy, "fp16", progress=quiet)
    build_engines(bundle_copy, "fp32", progress=quiet)
    assert TensorRTBackend(Bundle(bundle_copy)).engine_precision == "fp32"  # the bundle's default
    shutil.rmtree(next(p for p in (bundle_copy / "engines").iterdir() if p.name.endswith("-fp32")))
    assert TensorRTBackend(Bundle(bundle_copy)).engine_precision == "fp16"  # next by preference


def test_asking_for_fp32_never_serves_lower_precision_engines(fake_gpu, bundle_copy):
    """Runtime(precision="fp32") was served by fp16 (or int8) engines when no fp32
    build existed; now a BundleError names the engine folders there are (auto falls through)."""
    fake_gpu()
    build_engines(bundle_copy, "fp16", progress=quiet)
    with pytest.raises(BundleError, match=r"fp32 on sm90.*engine folders here: .*-fp16.*--precision fp32"):
        TensorRTBackend(Bundle(bundle_copy, "fp32"))
    assert Runtime(bundle_copy, backend="auto", precision="fp32").backend.name == "ort-cpu"
    assert TensorRTBackend(Bundle(bundle_copy)).engine_precision == "fp16"  # the default may fall back
