"""The CLI's fixed choices as enums, so every `--help` lists them (torch-free to import)."""

from __future__ import annotations

from enum import Enum

from anymodal.runtime.backends import BACKENDS
from anymodal.runtime.patterns import ALL_PATTERNS


class Layout(str, Enum):
    gcnet = "gcnet"  # MoMKE's IEMOCAP / MOSI / MOSEI conversations
    mmsa = "mmsa"  # DERL's MOSI / MOSEI sequences


class Int8Mode(str, Enum):
    dynamic = "dynamic"  # activations quantised per request (the default: faster on CPU)
    static = "static"  # QDQ calibrated on the training split


class Kernels(str, Enum):
    standard = "standard"
    fused = "fused"  # RouterMix TensorRT-plugin nodes


class BuildPrecision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class Split(str, Enum):
    test = "test"
    val = "val"
    train = "train"


class NonFinite(str, Enum):
    error = "error"
    absent = "absent"


class Compare(str, Enum):  # rt-bench ab: what the two sessions differ in
    rewrites = "rewrites"
    executor = "executor"
    executor_both = "executor-both"


class OnOff(str, Enum):
    on = "on"
    off = "off"


Backend = Enum("Backend", {name.replace("-", "_"): name for name in ("auto", *BACKENDS)}, type=str)
CONDITIONS = " ".join(ALL_PATTERNS)  # also accepted as a,v / audio,visual
