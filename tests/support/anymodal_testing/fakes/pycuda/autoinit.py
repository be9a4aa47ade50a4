"""Fake `pycuda.autoinit`: like the real one, makes a new context on device 0 and leaves it
current for the rest of the process."""

import pycuda.driver as cuda

cuda.init()
device = cuda.Device(0)
context = device.make_context()
