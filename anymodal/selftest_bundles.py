"""The small bundles `rt-doctor --selftest` builds engines from (needs torch and onnx): a tiny
MoMKE exported standard, fused (RouterMix plugin nodes) and causal (step graphs), each
recording a synthetic training split on disk, as a trained run's bundle does, so INT8 engines
calibrate and every engine is parity-checked on real-shaped conversations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DIMS = (6, 10, 8)  # audio, text, visual: small and distinct


class Skip(Exception):
    """A self-test check whose libraries or hardware are not here; the message says which."""


def synthetic_run(root: Path, dims=DIMS) -> dict:
    """A synthetic dataset (GCNet layout) under root/data and a run folder whose config.json
    records it; returns the run config a bundle is written with (data, splits, source_run)."""
    from anymodal.train.data.gcnet import read_gcnet
    from anymodal.train.data.specs import SYNTH_FEATURES
    from anymodal.train.data.splits import make_splits
    from anymodal.train.data.synth import SynthConfig, generate

    root = Path(root)
    data = generate(SynthConfig(task="emotion4", conversations=12, min_len=3, max_len=9, dims=tuple(dims), seed=5),
                    root / "data")
    ds = read_gcnet(data, "iemocap4", SYNTH_FEATURES)
    cfg = {"labels": list(ds.spec.label_names), "dataset": "iemocap4", "features": list(SYNTH_FEATURES),
           "splits": make_splits(ds)}
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"data": {**cfg, "root": str(data.resolve())}}))
    return {"data": cfg, "source_run": str(run.resolve())}


def small_momke(hidden=64, causal=False, depth=1):
    import torch

    from anymodal.train.models.momke import MoMKE, MoMKEConfig

    torch.manual_seed(0)
    return MoMKE(MoMKEConfig(input_dims=DIMS, hidden=hidden, depth=depth, heads=2, output_dim=4,
                             task="emotion", causal=causal)).eval()


# precisions: what the checks build engines from (only the standard kind is checked at fp16;
# int8 engines calibrate from fp32 graphs), so no export is made that no check reads
KINDS = {"standard": dict(kernels="standard", causal=False, precisions=("fp32", "fp16")),
         "fused": dict(kernels="fused", causal=False, precisions=("fp32",)),  # RouterMix plugin nodes
         "causal": dict(kernels="standard", causal=True, precisions=("fp32",))}  # step graphs: streaming


class Bundles:
    """Each kind exported once per self-test; copies for checks that write engines."""

    def __init__(self, root: Path):
        self.root, self._paths, self._run, self._built = Path(root), {}, None, {}

    def path(self, kind: str = "standard") -> Path:
        if kind not in self._paths:
            try:
                from anymodal.export.bundle import write_bundle
            except ImportError as exc:
                raise Skip(f"exporting a test bundle needs the train extra ({exc.name} missing)") from None
            if self._run is None:
                self._run = synthetic_run(self.root / "synthetic")
            spec = KINDS[kind]
            model = small_momke(hidden=32, causal=spec["causal"])
            self._paths[kind] = write_bundle(model, self._run, self.root / f"bundle-{kind}", spec["precisions"],
                                             kernels=spec["kernels"])
        return self._paths[kind]

    def sharing_exports(self, root: Path) -> "Bundles":
        """The same exported bundles (and synthetic run), no engines yet: for checks under another
        TensorRT build, whose engines must not be read from this one's."""
        other = Bundles(root)
        other._paths, other._run = self._paths, self._run  # [kind] -> bundle folder, shared
        return other

    def copy(self, name: str, kind: str = "standard") -> Path:
        return Path(shutil.copytree(self.path(kind), self.root / name))

    def built(self, kind: str, precision: str) -> tuple[Path, Path]:
        """(bundle copy, engine folder) with engines of `precision` built once per self-test and
        shared by the checks that only read them (one build per kind and precision: the budget)."""
        if (kind, precision) not in self._built:
            from anymodal.export.trt_build import build_engines

            path = self.copy(f"trt-{kind}-{precision}", kind)
            self._built[kind, precision] = (path, build_engines(path, precision, progress=lambda *_: None))
        return self._built[kind, precision]
