"""Fake `pycuda.driver`: devices, a per-thread context stack, device memory in host bytes.

Rules kept from pycuda: allocation needs a current context; `DeviceAllocation` frees itself on
garbage collection by activating its context, which pycuda can only do on the thread that
created the context ("cannot activate out-of-thread context") — elsewhere it prints a warning
and the memory leaks. Copies from pageable host memory are synchronous in CUDA (counted)."""

from __future__ import annotations

import threading
import warnings

import numpy as np

_devices: list[tuple[str, tuple[int, int]]] = []
_tls = threading.local()
_initialised = False
stats = {"alloc": 0, "freed": 0, "leaked_bytes": 0, "pageable_copies": 0, "live": 0}
_memory: dict[int, "DeviceAllocation"] = {}
_next_address = [0x7F0000000000]
_lock = threading.Lock()


class Error(Exception):
    pass


class LogicError(Error):
    pass


class CannotActivateOutOfThreadContext(LogicError):
    pass


def _configure(devices):
    _devices[:] = list(devices)


def init(flags: int = 0) -> None:
    global _initialised
    _initialised = True


def _stack() -> list:
    if not hasattr(_tls, "stack"):
        _tls.stack = []
    return _tls.stack


def _need_init():
    if not _initialised:
        raise LogicError("cuInit has not been called")


class Context:
    def __init__(self, device: "Device", primary: bool):
        self.device, self.primary = device, primary
        self.thread = threading.get_ident()

    def push(self) -> None:
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        if not _stack():
            raise LogicError("cuCtxPopCurrent failed: no context is current")
        _stack().pop()

    @staticmethod
    def get_current():
        return _stack()[-1] if _stack() else None

    def get_device(self):
        return self.device

    def detach(self) -> None:
        if _stack() and _stack()[-1] is self:
            _stack().pop()

    def synchronize(self) -> None:
        pass


class Device:
    @staticmethod
    def count() -> int:
        _need_init()
        return len(_devices)

    def __init__(self, index: int):
        _need_init()
        if not 0 <= index < len(_devices):
            raise LogicError(f"cuDeviceGet failed: invalid device ordinal {index}")
        self.index = index

    def name(self) -> str:
        return _devices[self.index][0]

    def compute_capability(self) -> tuple[int, int]:
        return _devices[self.index][1]  # no context needed, as with cuDeviceGetAttribute

    def total_memory(self) -> int:
        return 80 << 30

    def retain_primary_context(self) -> Context:
        return Context(self, primary=True)

    def make_context(self, flags: int = 0) -> Context:
        ctx = Context(self, primary=False)
        ctx.push()  # a new non-primary context, left current (what pycuda.autoinit does)
        return ctx


class DeviceAllocation:
    def __init__(self, nbytes: int):
        ctx = Context.get_current()
        if ctx is None:
            raise LogicError("cuMemAlloc failed: invalid device context")
        self.ctx, self.nbytes, self.data = ctx, nbytes, bytearray(nbytes)
        with _lock:
            self.address = _next_address[0]
            _next_address[0] += max(nbytes, 1) + 256
            _memory[self.address] = self
            stats["alloc"] += 1
            stats["live"] += 1
        self.freed = False

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        if self.freed:
            return
        if Context.get_current() is not self.ctx:
            if threading.get_ident() != self.ctx.thread:
                raise CannotActivateOutOfThreadContext("cannot activate out-of-thread context")
        self.freed = True
        with _lock:
            _memory.pop(self.address, None)
            stats["freed"] += 1
            stats["live"] -= 1

    def __del__(self):
        if getattr(self, "freed", True):
            return
        try:
            self.free()
        except CannotActivateOutOfThreadContext:
            stats["leaked_bytes"] += self.nbytes
            warnings.warn("PyCUDA WARNING: a clean-up operation failed (dead context maybe?)\n"
                          "cuMemFree failed: cannot activate out-of-thread context", RuntimeWarning)


def mem_alloc(nbytes: int) -> DeviceAllocation:
    return DeviceAllocation(int(nbytes))


def find(address: int) -> tuple["DeviceAllocation", int]:
    """The live allocation holding `address` and the offset into it (for the fake engine)."""
    for base, alloc in _memory.items():
        if base <= address < base + max(alloc.nbytes, 1):
            return alloc, address - base
    raise LogicError(f"address {address:#x} is not device memory (freed or never allocated)")


class _Pinned(np.ndarray):
    pass


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    return np.empty(shape, dtype, order=order).view(_Pinned)


def _is_pinned(arr) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, _Pinned):
            return True
        base = getattr(base, "base", None)
    return False


class Stream:
    def __init__(self, flags: int = 0):
        if Context.get_current() is None:
            raise LogicError("cuStreamCreate failed: invalid device context")
        self.handle = id(self)

    def synchronize(self) -> None:
        pass


def _dev(dest):
    alloc, off = find(int(dest))
    return alloc, off


def memcpy_htod_async(dest, src, stream=None) -> None:
    if Context.get_current() is None:
        raise LogicError("cuMemcpyHtoDAsync failed: invalid device context")
    if not _is_pinned(src):
        stats["pageable_copies"] += 1
    src = np.ascontiguousarray(src)
    alloc, off = _dev(dest)
    if off + src.nbytes > alloc.nbytes:
        raise LogicError("cuMemcpyHtoDAsync failed: copy past the end of the allocation")
    alloc.data[off:off + src.nbytes] = src.tobytes()


def memcpy_dtoh_async(dest, src, stream=None) -> None:
    if Context.get_current() is None:
        raise LogicError("cuMemcpyDtoHAsync failed: invalid device context")
    if not _is_pinned(dest):
        stats["pageable_copies"] += 1
    alloc, off = _dev(src)
    if off + dest.nbytes > alloc.nbytes:
        raise LogicError("cuMemcpyDtoHAsync failed: copy past the end of the allocation")
    dest.view(np.uint8).reshape(-1)[:] = np.frombuffer(bytes(alloc.data[off:off + dest.nbytes]), np.uint8)


memcpy_htod = memcpy_htod_async
memcpy_dtoh = memcpy_dtoh_async


def mem_get_info() -> tuple[int, int]:
    if Context.get_current() is None:  # cuMemGetInfo, no context activation in pycuda's wrapper
        raise LogicError("cuMemGetInfo failed: invalid device context")
    used = sum(a.nbytes for a in _memory.values())
    return (80 << 30) - used, 80 << 30
