"""The TensorRT checks of `rt-doctor --selftest` (anymodal/selftest.py runs them). Each skips
with its reason when TensorRT, pycuda or a GPU is missing, before exporting anything. Engines
are built once per bundle kind and precision (Bundles.built) and shared by the checks that only
read them, to stay within the self-test's budget on one GPU:

  trt-{fp32,fp16,int8}   build (INT8 calibrated on the bundle's training split; rt-build's own
                         parity check against ONNX Runtime passed) + probs vs ORT CPU; fp32 also
                         the profile edges and that a standard bundle has no plugin layer
  trt-masked-mixed       the masked graph with per-utterance mixed availability vs ORT CPU
  trt-fused-plugin       a fused bundle: plugin layers in every RouterMix graph exactly when
                         the plugin can be registered here; probs vs ORT CPU
  trt-streaming          a causal bundle's conversation on TensorRT (re-scoring: no step
                         engines) equals streaming on ORT CPU, turn by turn
  trt-memory-threads     2,000 predictions from 8 threads, device memory stable
  trt-tamper             a modified plan is refused and `auto` falls through
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np

from .selftest_bundles import Bundles, Skip

# probs of an engine vs ORT CPU on the same request (TF32 is on in fp32 builds by default)
PROBS_LIMIT = {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.1}


def trt_ready() -> None:
    from anymodal.runtime.backends.tensorrt import TensorRTBackend

    ok, why = TensorRTBackend.available()
    if not ok:
        raise Skip(why)


def inputs(L=9, seed=0) -> dict:
    g = np.random.default_rng(seed)
    return {"audio": g.standard_normal((L, 6)).astype(np.float32), "text": g.standard_normal((L, 10)).astype(np.float32),
            "visual": g.standard_normal((L, 8)).astype(np.float32)}


def _probs_diff(rt, ref, **request) -> float:
    return float(np.abs(rt.predict(**request).probs - ref.predict(**request).probs).max())


def _index(engine_dir: Path) -> dict:
    return json.loads((engine_dir / "engines.json").read_text())


def router_mix_graphs(path: Path) -> set[str]:
    """The bundle's graphs that hold a fused RouterMix node (a plugin layer when registered)."""
    import onnx

    from anymodal.kernels.plugin_id import PLUGIN_DOMAIN, PLUGIN_NAME
    from anymodal.runtime.bundle import Bundle

    b = Bundle(path)
    return {g for g in b.graphs
            if any(n.op_type == PLUGIN_NAME and n.domain == PLUGIN_DOMAIN
                   for n in onnx.load(str(b.graph_path(g)), load_external_data=False).graph.node)}


def check_trt_precision(bundles: Bundles, precision: str) -> str:
    trt_ready()
    from anymodal.runtime import Runtime
    from anymodal.runtime.errors import InputError

    path, engines = bundles.built("standard", precision)
    index = _index(engines)
    rt = Runtime(path, backend="tensorrt", precision="fp16" if precision == "fp16" else None)
    ref = Runtime(path, backend="ort-cpu")
    err = _probs_diff(rt, ref, **inputs())
    limit = PROBS_LIMIT[precision]
    assert rt.backend.engine_precision == precision, f"served {rt.backend.engine_precision} engines"
    assert err < limit, f"probs differ from ORT CPU by {err:.3g} (limit {limit})"
    worst = max(g["max_error"] for g in index["parity"]["graphs"].values())
    detail = (f"built {engines.name}; rt-build parity max {worst:.2e} (tol {index['parity']['tolerance']:g}, "
              f"{index['parity']['data']}); probs max abs diff {err:.2e}")
    if precision == "int8":
        detail += f"; calibrated on {index['calibration']['data']}"
    if precision == "fp32":
        assert index["plugin"] is False, f"a standard bundle has plugin layers in {index['plugin_graphs']}"
        rt.predict(**inputs(L=1))  # profile edges: min and max run, one past max is refused by name
        rt.predict(**{k: np.repeat(v[None], 16, 0).repeat(29, 1)[:, :256] for k, v in inputs(L=9).items()})
        try:
            rt.predict(**inputs(L=257))
        except InputError as exc:
            detail += f"; L=1 and [16, 256] run, L=257 refused ({str(exc)[:60]}…)"
        else:
            raise AssertionError("L=257 (beyond the profile) was not refused")
    rt.close()
    return detail


def check_trt_masked_mixed(bundles: Bundles) -> str:
    """Per-utterance availability: the request runs the masked graph; every pattern occurs."""
    trt_ready()
    from anymodal.runtime import Runtime
    from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

    path, _ = bundles.built("standard", "fp32")
    x = inputs(L=len(ALL_PATTERNS) * 2, seed=4)
    present = {MODALITY_NAMES[m]: np.array([m in ALL_PATTERNS[i % len(ALL_PATTERNS)] for i in range(len(x["audio"]))])
               for m in MODALITIES}
    with Runtime(path, backend="tensorrt") as rt, Runtime(path, backend="ort-cpu") as ref:
        a, b = rt.predict(**x, present=present), ref.predict(**x, present=present)
    assert a.graph == "masked" and a.backend == "tensorrt", f"ran {a.graph} on {a.backend}"
    err = float(np.abs(a.probs - b.probs).max())
    werr = max(float(np.abs(a.router_weights[m] - b.router_weights[m]).max()) for m in a.router_weights)
    assert err < PROBS_LIMIT["fp32"] and werr < PROBS_LIMIT["fp32"], \
        f"masked graph vs ORT CPU: probs {err:.3g}, router weights {werr:.3g} (limit {PROBS_LIMIT['fp32']})"
    return f"all 7 patterns in one conversation on the masked engine; probs {err:.2e}, router weights {werr:.2e}"


def check_trt_fused_plugin(bundles: Bundles) -> str:
    """When the build registered the RouterMix plugin, every graph with a RouterMix node must have
    plugin layers: TensorRT >= 10.9 is expected to prefer a registered creator over the node's
    local function (the order the fakes README lists as not verified). Not registered: no
    plugin layers, and the reason is shown."""
    trt_ready()
    from anymodal.runtime import Runtime

    path, engines = bundles.built("fused", "fp32")
    index = _index(engines)
    fused = router_mix_graphs(path)
    assert fused, "the fused bundle has no RouterMix node"
    if index["plugin_registered"]:
        assert index["plugin"] and set(index["plugin_graphs"]) == fused, \
            f"plugin layers in {sorted(index['plugin_graphs'])}, RouterMix nodes in {sorted(fused)}"
        how = f"plugin layers in all {len(fused)} RouterMix graphs"
    else:
        assert not index["plugin"], f"plugin layers although the plugin was not registered: {index['plugin_graphs']}"
        how = f"plugin not registered ({index['plugin_note']}): local functions inlined"
    with Runtime(path, backend="tensorrt") as rt, Runtime(path, backend="ort-cpu") as ref:
        err = _probs_diff(rt, ref, **inputs())
    assert err < PROBS_LIMIT["fp32"], f"probs differ from ORT CPU by {err:.3g} (limit {PROBS_LIMIT['fp32']})"
    return f"{how}; probs max abs diff {err:.2e}"


def check_trt_streaming(bundles: Bundles) -> str:
    trt_ready()
    from anymodal.runtime import Runtime
    from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES, MODALITY_NAMES

    path, _ = bundles.built("causal", "fp32")
    g = np.random.default_rng(7)
    dims = dict(zip(MODALITIES, (6, 10, 8)))
    worst = 0.0
    with Runtime(path, backend="tensorrt") as rt, Runtime(path, backend="ort-cpu", threads=1) as ref:
        on_trt, streaming = rt.conversation(max_context=6), ref.conversation(max_context=6)
        assert on_trt.mode == "rescore" and streaming.mode == "stream", (on_trt.mode, streaming.mode)
        for turn in range(12):  # past max_context: the window slides
            pattern = ALL_PATTERNS[g.integers(len(ALL_PATTERNS))]
            x = {MODALITY_NAMES[m]: g.standard_normal(dims[m]).astype(np.float32) for m in pattern}
            a, b = on_trt.add(**x), streaming.add(**x)
            assert a.backend == "tensorrt"
            worst = max(worst, float(np.abs(a.probs - b.probs).max()))
    assert worst < PROBS_LIMIT["fp32"], f"turn probs differ from ORT streaming by {worst:.3g}"
    return f"12 turns, window 6, random patterns: re-scored on TensorRT = ORT streaming (max {worst:.2e})"


def _free_device_memory(cuda) -> int:
    """cuMemGetInfo reports on the calling thread's current context: push the device's primary one."""
    from anymodal.runtime.backends.trt_keys import cuda_device_index

    ctx = cuda.Device(cuda_device_index()).retain_primary_context()
    ctx.push()
    try:
        return cuda.mem_get_info()[0]
    finally:
        cuda.Context.pop()


def check_trt_memory_threads(bundles: Bundles) -> str:
    trt_ready()
    import pycuda.driver as cuda

    from anymodal.runtime import Runtime

    path, _ = bundles.built("standard", "fp32")
    rt = Runtime(path, backend="tensorrt")
    rt.predict(**inputs())  # warm: engines loaded, buffers allocated
    free0 = _free_device_memory(cuda)
    errors = []

    def work(seed):
        try:
            for k in range(250):
                rt.predict(**inputs(L=9, seed=seed * 1000 + k))
        except Exception as exc:  # reported as the failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} thread errors, first: {errors[0]!r}"
    drift = (free0 - _free_device_memory(cuda)) / 2**20
    assert drift < 16, f"free device memory fell by {drift:.1f} MiB over 2,000 predictions"
    rt.close()
    return f"2,000 predictions from 8 threads; free device memory change {drift:+.1f} MiB"


def check_trt_tamper(bundles: Bundles) -> str:
    trt_ready()
    from anymodal.runtime import Runtime

    built, engines = bundles.built("standard", "fp32")
    path = Path(shutil.copytree(built, bundles.root / "trt-tamper"))
    plan = path / "engines" / engines.name / "atv.plan"
    data = plan.read_bytes()
    plan.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    rt = Runtime(path, backend="auto")
    assert rt.backend_name != "tensorrt", "a modified plan was used"
    assert any(n.startswith("tensorrt:") and "sha256" in n for n in rt.backend_notes), \
        f"no sha256 note: {rt.backend_notes}"
    return f"refused; auto chose {rt.backend_name}"


def checks(bundles: Bundles) -> list:
    return [*[(f"trt-{p}", lambda p=p: check_trt_precision(bundles, p)) for p in ("fp32", "fp16", "int8")],
            ("trt-masked-mixed", lambda: check_trt_masked_mixed(bundles)),
            ("trt-fused-plugin", lambda: check_trt_fused_plugin(bundles)),
            ("trt-streaming", lambda: check_trt_streaming(bundles)),
            ("trt-memory-threads", lambda: check_trt_memory_threads(bundles)),
            ("trt-tamper", lambda: check_trt_tamper(bundles))]
