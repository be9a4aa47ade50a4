"""Conversations on the TensorRT backend (fakes, tests/support/anymodal_testing/fakes): rt-build builds engines for the
full graphs only, so a causal bundle re-scores the window there — and says so — with the same
predictions as streaming on ONNX Runtime."""

import shutil

import numpy as np

from anymodal.export.trt_build import build_engines
from anymodal.runtime import Runtime
from anymodal.runtime.backends.tensorrt import TensorRTBackend
from anymodal.runtime.bundle import Bundle
from anymodal_testing.helpers import random_turns


def test_tensorrt_without_step_engines_rescores_like_streaming(fake_gpu, causal_bundle, tmp_path):
    fake_gpu()
    path = shutil.copytree(causal_bundle, tmp_path / "bundle")
    build_engines(path, "fp32", progress=lambda *_: None)
    trt = Runtime.with_backend(Bundle(path), TensorRTBackend(Bundle(path)))
    assert not trt.backend.serves("step_a") and trt.backend.serves("a")
    on_trt = trt.conversation(max_context=4)
    assert on_trt.mode == "rescore" and "tensorrt backend has no step graphs" in on_trt.mode_reason
    with Runtime(path, backend="ort-cpu", threads=1) as ort_rt:
        streaming = ort_rt.conversation(max_context=4)
        assert streaming.mode == "stream"
        for _, turn in random_turns(9):
            a, b = on_trt.add(**turn), streaming.add(**turn)
            assert a.backend == "tensorrt" and np.abs(a.probs - b.probs).max() <= 1e-4
    trt.close()
