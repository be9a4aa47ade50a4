"""rt-doctor on a torch-free GPU machine (a Jetson serving with TensorRT): devices are listed
through pycuda. Fails on the earlier doctor, which listed devices through torch only."""

import sys

from anymodal import doctor


def test_devices_listed_through_pycuda_without_torch(fake_gpu, monkeypatch):
    _, cuda = fake_gpu(devices=(("Orin", (8, 7)),))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    (dev,) = doctor.cuda_devices()
    assert dev["name"] == "Orin" and dev["compute_capability"] == "8.7" and dev["seen_by"] == "pycuda"
    assert dev["memory_gib"] > 0
    assert cuda.Context.get_current() is None  # listing created no context
    assert doctor._triton_kernels()[0] is False  # the Triton kernels still need torch's CUDA


def test_no_devices_without_torch_or_pycuda(fake_gpu, monkeypatch):
    fake_gpu(pycuda=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    assert doctor.cuda_devices() == []
