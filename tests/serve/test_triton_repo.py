"""rt-export triton without a server: every generated config.pbtxt parses strictly as Triton's
ModelConfig and matches the bundle; the batch grouping and the BLS router run in-process."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from anymodal.export.triton_repo import write_triton_repo
from anymodal.runtime import Runtime
from anymodal.runtime.bundle import Bundle
from anymodal.runtime.errors import InputError
from anymodal.runtime.families import UTTERANCES
from anymodal.serve.batching import group_requests, run_batch, run_scheduled
from anymodal.serve.family_io import predict_kwargs, prediction_outputs


def parse_config(path):
    mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="the serve extra is not installed")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), mc.ModelConfig())  # strict: unknown fields raise


def test_runtime_flavor_config_matches_the_bundle(small_bundle, tmp_path):
    from typer.testing import CliRunner

    from anymodal.cli import export_app

    repo = tmp_path / "repo"
    res = CliRunner().invoke(export_app, ["triton", "--bundle", str(small_bundle), "--out", str(repo), "--threads",
                                          "2", "--instances", "3"])  # the command around write_triton_repo
    assert res.exit_code == 0 and f"(runtime flavor) to the Triton repository {repo}" in res.output, res.output
    cfg = parse_config(repo / "anymodal" / "config.pbtxt")
    b = Bundle(small_bundle)
    assert cfg.backend == "python" and cfg.max_batch_size == 64 and cfg.instance_group[0].count == 3
    assert cfg.HasField("dynamic_batching") and cfg.parameters["threads"].string_value == "2"
    inputs = {i.name: i for i in cfg.input}
    for m, name in (("a", "audio"), ("t", "text"), ("v", "visual")):
        assert list(inputs[name].dims) == [-1, b.dims[m]] and inputs[name].optional
        assert inputs[f"{name}_present"].optional
    outputs = {o.name: list(o.dims) for o in cfg.output}
    assert outputs["probs"] == [-1, len(b.labels)] and outputs["router_weights_audio"] == [-1, 3]
    assert (repo / "anymodal" / "1" / "model.py").is_file()
    Bundle(repo / "anymodal" / "1" / "bundle").graph_path("atv")  # the copy passes its sha256 checks


def test_graphs_flavor_has_one_model_per_graph_from_the_manifest(small_bundle, tmp_path):
    repo = write_triton_repo(small_bundle, tmp_path / "repo", flavor="graphs", name="m")
    b = Bundle(small_bundle)
    router = parse_config(repo / "m" / "config.pbtxt")
    assert router.parameters["graph_models"].string_value == "m"
    for graph, info in b.graphs.items():
        cfg = parse_config(repo / f"m_{graph}" / "config.pbtxt")
        assert cfg.platform == "onnxruntime_onnx"
        assert [i.name for i in cfg.input] == [s["name"] for s in info["inputs"]]
        for decl, spec in zip(cfg.input, info["inputs"]):
            assert list(decl.dims) == [d if isinstance(d, int) else -1 for d in spec["shape"][1:]]
        onnx = (repo / f"m_{graph}" / "1" / "model.onnx").resolve()
        assert onnx == (repo / "m" / "1" / "bundle" / info["file"]).resolve()


def test_grouping_joins_equal_requests_and_isolates_bad_ones(small_bundle):
    rt = Runtime(small_bundle, threads=1)
    rng = np.random.default_rng(0)
    a = [rng.standard_normal((1, 4, 6)).astype(np.float32) for _ in range(3)]
    t = rng.standard_normal((1, 4, 10)).astype(np.float32)
    batch = [{"audio": a[0]}, {"audio": a[1], "text": t}, {"audio": a[2]}, {"lengths": np.array([[2]])},
             {"audio": a[0][:, :3]}]
    assert group_requests(batch) == [[0, 2], [1], [3], [4]]
    calls = []

    def predict(**kw):
        calls.append(kw)
        return rt.predict(**kw)

    results = run_batch(predict, UTTERANCES, batch)
    assert calls[0]["audio"].shape == (2, 4, 6)  # requests 0 and 2 ran as one batch of 2
    assert isinstance(results[3], InputError) and "all modalities are absent" in str(results[3])
    for i in (0, 1, 2, 4):
        want = prediction_outputs(rt.predict(**predict_kwargs(UTTERANCES, batch[i])), 1)
        np.testing.assert_allclose(results[i]["probs"], want["probs"], atol=1e-5)
        assert results[i]["pattern"].shape == (1, 1)


def test_scheduled_batches_join_lengths_and_isolate_bad_requests(small_bundle, tmp_path):
    rt = Runtime(small_bundle, threads=1)
    rng = np.random.default_rng(1)
    batch = [{"audio": rng.standard_normal((1, L, 6)).astype(np.float32)} for L in (4, 3, 6)]
    batch.insert(1, {"audio": rng.standard_normal((1, 4, 7)).astype(np.float32)})  # wrong dim
    batch.append({"audio": rng.standard_normal((2, 5, 6)).astype(np.float32), "lengths": np.array([[5], [2]])})
    with rt.scheduler(max_batch=5, max_delay_ms=600_000) as s:  # 5 good rows: one call
        results = run_scheduled(s, UTTERANCES, batch)
        assert (s.stats.calls, s.stats.jobs) == (1, 4)
    assert isinstance(results[1], InputError) and "feature dim 7" in str(results[1])
    for i in (0, 2, 3, 4):
        want = prediction_outputs(rt.predict(**predict_kwargs(UTTERANCES, batch[i])), len(batch[i]["audio"]))
        assert set(results[i]) == set(want)
        np.testing.assert_allclose(results[i]["probs"], want["probs"], atol=1e-5)
        assert results[i]["labels"].tolist() == want["labels"].tolist()
    repo = write_triton_repo(small_bundle, tmp_path / "repo", scheduler=True)
    assert 'key: "scheduler" value: { string_value: "on" }' in (repo / "anymodal" / "config.pbtxt").read_text()


def test_bls_router_runs_graph_models_like_the_runtime(small_bundle, tmp_path, monkeypatch):
    """The graphs flavor's router with a stand-in for Triton's BLS that runs each graph model's
    ONNX file from the generated repository with ONNX Runtime."""
    import onnxruntime as ort

    from anymodal.serve.triton_model import bls_runtime

    repo = write_triton_repo(small_bundle, tmp_path / "repo", flavor="graphs", name="m")
    called = []

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceRequest:
        def __init__(self, model_name, requested_output_names, inputs):
            self.model, self.outputs, self.inputs = model_name, requested_output_names, inputs

        def exec(self):
            called.append(self.model)
            sess = ort.InferenceSession(str(repo / self.model / "1" / "model.onnx"))
            out = sess.run(self.outputs, {t.name: t.array for t in self.inputs})
            return types.SimpleNamespace(has_error=lambda: False, tensors=dict(zip(self.outputs, out)))

    fake = types.SimpleNamespace(Tensor=Tensor, InferenceRequest=InferenceRequest,
                                 get_output_tensor_by_name=lambda r, n: Tensor(n, r.tensors[n]))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    router, rt = bls_runtime(repo / "m" / "1" / "bundle", "m"), Runtime(small_bundle, threads=1)
    rng = np.random.default_rng(1)
    batch = [{"audio": rng.standard_normal((1, 5, 6)).astype(np.float32),
              "visual": rng.standard_normal((1, 5, 8)).astype(np.float32)} for _ in range(2)]
    results = run_batch(router.predict, UTTERANCES, batch)
    assert called == ["m_av"]  # both requests in one call of the {a,v} graph model
    for arrays, got in zip(batch, results):
        want = prediction_outputs(rt.predict(**arrays), 1)
        np.testing.assert_allclose(got["probs"], want["probs"], atol=1e-5)


def test_a_missing_server_names_the_extra(monkeypatch):
    import importlib.util

    from anymodal.serve.server import ServeError, server_dist

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ServeError, match=r"pip install 'anymodal\[serve\]'"):
        server_dist()


def test_streaming_model_config_is_a_sequence_batcher(causal_bundle, tmp_path):
    from typer.testing import CliRunner

    from anymodal.cli import export_app

    repo = tmp_path / "repo"
    res = CliRunner().invoke(export_app, ["triton", "--bundle", str(causal_bundle), "--out", str(repo), "--name", "m",
                                          "--streaming", "--max-streams", "8", "--idle-timeout-s", "2.5",
                                          "--max-context", "16", "--threads", "1"])
    assert res.exit_code == 0 and "wrote model 'm_stream'" in res.output, res.output
    cfg = parse_config(repo / "m_stream" / "config.pbtxt")
    b = Bundle(causal_bundle)
    seq = cfg.sequence_batching
    assert cfg.backend == "python" and not cfg.HasField("dynamic_batching") and cfg.max_batch_size == 8
    assert seq.max_sequence_idle_microseconds == 2_500_000 and seq.oldest.max_candidate_sequences == 8
    assert [(c.name, c.control[0].kind, list(c.control[0].int32_false_true)) for c in seq.control_input] == [
        ("START", seq.Control.CONTROL_SEQUENCE_START, [0, 1]), ("END", seq.Control.CONTROL_SEQUENCE_END, [0, 1])]
    assert cfg.parameters["max_context"].string_value == "16" and "scheduler" not in cfg.parameters
    inputs = {i.name: list(i.dims) for i in cfg.input}
    assert inputs == {"audio": [b.dims["a"]], "text": [b.dims["t"]], "visual": [b.dims["v"]],
                      "audio_present": [1], "text_present": [1], "visual_present": [1]}
    outputs = {o.name: list(o.dims) for o in cfg.output}
    assert outputs["probs"] == [len(b.labels)] and outputs["router_weights_audio"] == [3]
    assert outputs["turn"] == [1] and outputs["mode"] == [1]
    assert "TritonStreamModel as TritonPythonModel" in (repo / "m_stream" / "1" / "model.py").read_text()
    Bundle(repo / "m_stream" / "1" / "bundle").graph_path("atv")  # the link reaches the model's bundle
    write_triton_repo(causal_bundle, repo, name="m")  # rewritten without --streaming: the stream model goes
    assert not (repo / "m_stream").exists()


def test_sequence_turns_equal_their_conversations_and_fail_alone(causal_bundle):
    """serve/sequences.run_turns (what the streaming model runs per sequence batch), in-process:
    interleaved sequences with sensor drops, START/END, a sequence the model does not hold."""
    from anymodal.runtime import StreamClosedError
    from anymodal.serve.family_io import turn_outputs
    from anymodal.serve.sequences import SequenceTurn, run_turns
    from anymodal_testing.helpers import random_turns

    rt = Runtime(causal_bundle, backend="ort-cpu", threads=1)
    plans = {sid: list(random_turns(3, seed=90 + k)) for k, sid in enumerate((7, "call-2"))}
    convs = {sid: rt.conversation(max_context=8) for sid in plans}
    with rt.scheduler(max_batch=4, max_delay_ms=0, max_streams=4, max_context=8) as s:
        for t in range(3):
            turns = [SequenceTurn(sid, t == 0, t == 2, {k: v[None] for k, v in plan[t][1].items()})
                     for sid, plan in plans.items()]
            turns.append(SequenceTurn("ghost", False, False, {"audio": np.zeros((1, 6), np.float32)}))
            flagged = {"text": np.zeros((1, 10), np.float32), "text_present": np.array([[True, True]])}
            turns.append(SequenceTurn("bad", True, False, flagged))
            got = run_turns(s, turns)
            for (sid, plan), out in zip(plans.items(), got):
                want = turn_outputs(convs[sid].add(**plan[t][1]))
                assert set(out) == set(want) and out["turn"].tolist() == [[t]] and out["mode"][0, 0] == b"stream"
                assert out.pop("graph")[0, 0] in (b"steps", want.pop("graph")[0, 0])  # batched or the pattern's own
                for name, w in want.items():
                    if w.dtype == object:
                        assert out[name].tolist() == w.tolist(), name
                    else:
                        np.testing.assert_allclose(out[name], w, atol=1e-5, rtol=0, err_msg=name)
            assert isinstance(got[2], StreamClosedError) and "'ghost' is not open (never started)" in str(got[2])
            assert isinstance(got[3], InputError) and "text_present: one flag per turn" in str(got[3])
        assert len(s.streams) == 0  # both ended by their END turn
