"""CPU int8 bundles (per-channel int8 MatMul weights, dynamic or static activations): served by
the Runtime, their accuracy delta per condition and max logit difference recorded, refused past
--max-drop; both families."""

import json
from pathlib import Path

import numpy as np
import pytest

from anymodal.bench.accuracy import delta_line, int8_delta_lines, precision_deltas
from anymodal.export.api import export_run_folder
from anymodal.export.bundle import write_bundle
from anymodal.export.int8 import accuracy_deltas
from anymodal.runtime import Runtime
from anymodal.runtime.errors import CalibrationDataError, ExportError
from anymodal.train.data.synth import SynthConfig, generate
from anymodal.train.families.momke import train_momke_run
from anymodal.train.momke_trainer import TrainConfig
from anymodal_testing.helpers import make_derl, run_config

TINY = dict(hidden=32, depth=1, heads=2)


@pytest.fixture(scope="module")
def momke_run(tmp_path_factory):
    data = generate(SynthConfig(task="emotion4", conversations=40, dims=(24, 32, 16), seed=3),
                    tmp_path_factory.mktemp("synth8"))
    return train_momke_run(data, "iemocap4", tmp_path_factory.mktemp("run8"), model_overrides=TINY,
                           train_cfg=TrainConfig(epochs_stage1=2, epochs_stage2=2, lr=1e-3), progress=False)


@pytest.fixture(scope="module")
def int8_bundle(momke_run, tmp_path_factory):
    # ~50 validation utterances: one utterance is ~2 points, so the gate is opened here and
    # tested on its own below
    return export_run_folder(momke_run, tmp_path_factory.mktemp("b8") / "b", ("fp32", "int8"), max_drop=100.0)


@pytest.mark.slow
def test_int8_bundle_records_accuracy_delta_and_serves(int8_bundle):
    out = int8_bundle
    mf = json.loads((out / "manifest.json").read_text())
    int8 = mf["variants"]["int8"]
    acc = int8["accuracy"]
    assert acc["measured"] and acc["split"] == "val" and acc["metric"] == "wa"
    assert set(acc["conditions"]) == {"a", "t", "v", "at", "av", "tv", "atv"}
    for c in acc["conditions"].values():
        assert c["delta_points"] == pytest.approx(100 * (c["int8"] - c["fp32"]))
        assert abs(c["delta_points"]) < 25  # int8 still predicts what fp32 does
    assert set(int8["max_logit_difference"]) == set(mf["parity"]["int8"])
    assert 0 < max(int8["max_logit_difference"].values()) < 1.0
    rng = np.random.default_rng(0)
    a, t = rng.standard_normal((6, 24), np.float32), rng.standard_normal((6, 32), np.float32)
    with Runtime(out, precision="int8") as rt8, Runtime(out, precision="fp32") as rt32:
        p8, p32 = rt8.predict(audio=a, text=t), rt32.predict(audio=a, text=t)
    assert p8.graph == "at" and np.abs(p8.probs - p32.probs).max() < 0.1
    (line,) = int8_delta_lines(out)  # what rt-report accuracy prints
    assert line.startswith("int8 vs fp32 on val (WA, points): {a} ") and "{a,t,v}" in line
    assert not np.array_equal(p8.probs, p32.probs)  # it really ran other graphs


@pytest.mark.slow
def test_int8_refused_past_max_drop_naming_the_condition(int8_bundle):
    data = json.loads((int8_bundle / "manifest.json").read_text())
    root = json.loads((Path(data["source_run"]) / "config.json").read_text())["data"]["root"]
    with pytest.raises(ExportError, match=r"int8 refused: condition \{[atv,]+\} loses .*--max-drop -100\)"):
        accuracy_deltas(int8_bundle, Path(root), "emotion", max_drop=-100.0)


def test_int8_needs_its_fp32_reference(tmp_path):
    with pytest.raises(ExportError, match="needs fp32 in the same bundle"):
        write_bundle(make_derl(), run_config("sentiment"), tmp_path / "b", precisions=("int8",))


@pytest.mark.slow
def test_derl_int8_variant_exports_with_logit_difference(tmp_path):
    out = write_bundle(make_derl(), run_config("sentiment"), tmp_path / "b", precisions=("fp32", "int8"))
    int8 = json.loads((out / "manifest.json").read_text())["variants"]["int8"]
    assert int8["accuracy"]["measured"] is False  # no data recorded: said, not faked
    assert "accuracy not measured" in int8_delta_lines(out)[0]
    assert max(int8["max_logit_difference"].values()) < 1.0


@pytest.mark.slow
def test_static_int8_is_calibrated_qdq_that_ort_fuses(momke_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    out = export_run_folder(momke_run, tmp_path / "b", ("fp32", "int8"), max_drop=100.0, int8_mode="static")
    int8 = json.loads((out / "manifest.json").read_text())["variants"]["int8"]
    assert int8["mode"] == "static" and "calibrated" in int8["quantization"] and int8["accuracy"]["measured"]
    assert 0 < max(int8["max_logit_difference"].values()) < 1.0
    model = onnx.load(str(out / "graphs/int8/atv.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops  # fixed activation scales
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    batched = [n for n in weights if inits[n.input[0]].ndim == 3]
    assert batched and len(weights) > len(batched)
    # ORT's QLinearMatMul takes no per-channel scale on a 3-D weight: one scale per tensor there
    assert all(inits[n.input[1]].size == 1 for n in batched)
    assert any(inits[n.input[1]].size > 1 for n in weights if n not in batched)  # 2-D: per channel
    # and ORT does fuse them: no float MatMul left on a dequantised weight after its optimisations
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(out / "graphs/int8/atv.ort.onnx"), opts, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"), load_external_data=False)
    made_by = {o: n.op_type for n in opt.graph.node for o in n.output}
    ops = [n.op_type for n in opt.graph.node]
    assert "QLinearMatMul" in ops
    assert not [n.name for n in opt.graph.node if n.op_type == "MatMul" and made_by.get(n.input[1]) == "DequantizeLinear"]


def test_static_int8_needs_the_training_data_before_exporting(tmp_path):
    with pytest.raises(CalibrationDataError, match="--int8-mode static calibrates on the training split"):
        write_bundle(make_derl(), run_config("sentiment"), tmp_path / "b", precisions=("fp32", "int8"),
                     int8_mode="static")


def test_unknown_int8_mode_is_refused_before_export(tmp_path):
    with pytest.raises(ExportError, match="unknown int8 mode 'weird'; choose from dynamic, static"):
        write_bundle(make_derl(), run_config("sentiment"), tmp_path / "b", precisions=("fp32", "int8"),
                     int8_mode="weird")


@pytest.mark.slow
def test_precision_deltas_on_the_test_split(int8_bundle):
    """What `rt-report accuracy --precision int8 --compare fp32` prints."""
    data = json.loads((int8_bundle / "manifest.json").read_text())
    root = json.loads((Path(data["source_run"]) / "config.json").read_text())["data"]["root"]
    d = precision_deltas(int8_bundle, root, "emotion", "test", "fp32", "int8")
    assert d["split"] == "test" and d["metric"] == "wa" and len(d["conditions"]) == 7
    for c in d["conditions"].values():
        assert c["delta_points"] == pytest.approx(100 * (c["int8"] - c["fp32"])) and 0 < c["fp32"] <= 1
    line = delta_line(d)
    assert line.startswith("int8 vs fp32 on test (WA, points): {a} ") and "; worst " in line
