"""Faithful CPU fakes of `tensorrt`, `tensorrt.plugin` and `pycuda.driver`.

They enforce what the real libraries enforce and the anymodal code must respect: QDP's
annotation/signature checks and ShapeExpr without `__int__` (read off the tensorrt bindings
wheels' `tensorrt/plugin/*.py`), TensorRT DataType enums and per-tensor engine dtypes,
`set_input_shape` returning False outside the optimisation profile, the parser refusing
asymmetric Q/DQ, pycuda's per-thread context stack and its out-of-thread clean-up leak,
onnx-tensorrt's import of local functions (outer names win) and plugin nodes, QDP's calling
conventions at build time (aot_impl gets every attribute by position), and they count device
allocations and pageable copies. README.md lists each rule with the real source it comes from. `install(monkeypatch, version=...)`
puts fresh modules into sys.modules for one test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _load(name: str, path: Path, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)
    spec.loader.exec_module(mod)
    return mod


def install(monkeypatch, version: str = "10.13.3", devices=(("NVIDIA H100 80GB HBM3", (9, 0)),),
            tensorrt: bool = True, pycuda: bool = True):
    """Fresh fakes for one test; returns (trt, cuda) (None where not installed). TensorRT < 10.7
    has no `tensorrt.plugin`; 10.7/10.8 have one without AOT (`aot_impl`, `KernelLaunchParams`)."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("tensorrt", "pycuda")]:
        monkeypatch.delitem(sys.modules, name)
    cuda = trt = None
    if pycuda:
        pkg = _load("pycuda", HERE / "pycuda" / "__init__.py", monkeypatch)
        cuda = _load("pycuda.driver", HERE / "pycuda" / "driver.py", monkeypatch)
        pkg.driver = cuda
        cuda._configure(devices)
        monkeypatch.setitem(sys.modules, "pycuda.autoinit", None)  # set up on first import below
        sys.modules.pop("pycuda.autoinit")
        pkg.__path__ = [str(HERE / "pycuda")]
    else:
        monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda -> ImportError
    if tensorrt:
        trt = _load("tensorrt", HERE / "fake_tensorrt.py", monkeypatch)
        trt.__version__ = version
        major, minor = (int(p) for p in version.split(".")[:2])
        if (major, minor) >= (10, 7):
            plugin = _load("tensorrt.plugin", HERE / "fake_tensorrt_plugin.py", monkeypatch)
            plugin._configure(aot=(major, minor) >= (10, 9))
            from . import emulated_kernels  # noqa: F401  (registers the kernels' emulators)
            trt.plugin = plugin
            trt.__path__ = []  # a package, so `import tensorrt.plugin` finds sys.modules' entry
    else:
        monkeypatch.setitem(sys.modules, "tensorrt", None)
    return trt, cuda
