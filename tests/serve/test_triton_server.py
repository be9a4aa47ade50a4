"""A real tritonserver (the `serve` extra) on 127.0.0.1, random free ports, serving a small MoMKE,
a small DERL and a small late-fusion bundle (the example family, known to the server through
$ANYMODAL_FAMILIES) from one repository; every answer compared with Runtime.predict. The same
server streams a causal MoMKE's conversations over the sequence batcher (`causal_stream`),
every turn compared with Conversation.add."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.serve
tritonclient = pytest.importorskip("tritonclient", reason="the serve extra is not installed")

from anymodal.export.triton_repo import write_triton_repo  # noqa: E402
from anymodal.runtime import InputError, Runtime  # noqa: E402
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITY_NAMES  # noqa: E402
from anymodal.serve.family_io import predict_kwargs, turn_outputs  # noqa: E402
from anymodal.serve.server import TritonServer  # noqa: E402
from anymodal_testing import latefusion_family  # noqa: E402  (registers the example family here)
from anymodal_testing.helpers import DIMS, random_turns  # noqa: E402
from anymodal_testing.triton_fixtures import group_pids, infer, metric_sum, success_count  # noqa: E402

PROTOCOLS = ("http", "grpc")
MODELS = ("momke", "derl")
LATEFUSION = latefusion_family.NAME
# the stubs' Python ignores PYTHONPATH: the example family's module is named by its file
SERVER_ENV = {"ANYMODAL_FAMILIES": latefusion_family.__file__}
STREAM = "causal_stream"  # the causal bundle's streaming model
STREAM_IDLE_S, STREAM_CONTEXT = 2.0, 4  # idle eviction after 2 s; windows of 4 turns (caches rebuilt)


@pytest.fixture(scope="session")
def tiny_derl_bundle(tmp_path_factory):
    """Untrained tiny DERL (answers need not be good, only equal); no training run needed."""
    from anymodal.export.bundle import write_bundle
    from anymodal_testing.helpers import make_derl

    return write_bundle(make_derl(), {"data": {}}, tmp_path_factory.mktemp("b") / "derl-tiny")


@pytest.fixture(scope="session")
def tiny_latefusion_bundle(tmp_path_factory):
    """The late-fusion example family, untrained (its router weights are keyed "fusion")."""
    from anymodal.export.bundle import write_bundle

    model = latefusion_family.build(latefusion_family.LateFusionConfig(input_dims=(6, 10, 8), hidden=8)).eval()
    return write_bundle(model, {"data": {"labels": ["happy", "sad", "neutral", "angry"]}},
                        tmp_path_factory.mktemp("b") / "latefusion-tiny")


@pytest.fixture(scope="session")
def bundles(small_bundle, tiny_derl_bundle, tiny_latefusion_bundle):
    return {"momke": small_bundle, "derl": tiny_derl_bundle, LATEFUSION: tiny_latefusion_bundle}


@pytest.fixture(scope="session")
def server(bundles, causal_bundle, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton-repo")
    for name, bundle in bundles.items():
        write_triton_repo(bundle, repo, name=name, threads=1)
    write_triton_repo(causal_bundle, repo, name="causal", threads=1, streaming=True, max_streams=8,
                      idle_timeout_s=STREAM_IDLE_S, max_context=STREAM_CONTEXT)
    srv = TritonServer(repo, env=SERVER_ENV)
    try:
        srv.start(timeout_s=60)
        yield srv
    finally:
        srv.stop()
        assert not group_pids(srv.proc.pid), "tritonserver left processes behind"


@pytest.fixture(scope="session")
def runtimes(bundles):
    return {name: Runtime(b, threads=1) for name, b in bundles.items()}


def address(server, protocol):
    return server.endpoints.http if protocol == "http" else server.endpoints.grpc


def request(rt: Runtime, pattern: str, seed: int) -> dict[str, np.ndarray]:
    """[1, L, dim] features of the pattern's modalities (DERL: each at its own length)."""
    rng = np.random.default_rng(seed)
    lens = rt.family.inputs.example_lengths(rt.bundle.model["config"], 5)  # sequences: the model's own
    return {MODALITY_NAMES[m]: rng.standard_normal((1, lens[m], rt.bundle.dims[m])).astype(np.float32)
            for m in pattern}


def expected(rt: Runtime, arrays: dict) -> dict[str, np.ndarray]:
    from anymodal.serve.family_io import predict_kwargs, prediction_outputs

    return prediction_outputs(rt.predict(**predict_kwargs(rt.family.inputs, arrays)), 1)


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        if w.dtype == object:
            assert got[name].tolist() == w.tolist(), name
        else:
            assert got[name].shape == w.shape, name
            np.testing.assert_allclose(got[name], w, atol=1e-5, rtol=0, err_msg=name)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", MODELS)
def test_every_subset_equals_runtime_predict(server, runtimes, model, protocol):
    rt = runtimes[model]
    for i, pattern in enumerate(ALL_PATTERNS):
        arrays = request(rt, pattern, i)
        got = infer(protocol, address(server, protocol), model, arrays)
        assert_same(got, expected(rt, arrays))
        assert got["pattern"][0, 0].decode() == pattern and got["graph"][0, 0].decode() == pattern


@pytest.mark.slow
def test_latefusion_family_served_with_its_declared_outputs(server, runtimes):
    """A family from outside anymodal, on the real server: the outputs the repository declares
    are the ones its Prediction has (router_weights_fusion), every pattern equals Runtime.predict."""
    import json

    rt = runtimes[LATEFUSION]
    config = json.loads(urllib.request.urlopen(f"http://{server.endpoints.http}/v2/models/{LATEFUSION}/config").read())
    declared = {o["name"] for o in config["output"]}
    assert "router_weights_fusion" in declared and "router_weights_audio" not in declared
    for i, pattern in enumerate(ALL_PATTERNS):
        arrays = request(rt, pattern, 200 + i)
        protocol = PROTOCOLS[i % 2]
        got = infer(protocol, address(server, protocol), LATEFUSION, arrays)
        assert set(got) == declared
        assert_same(got, expected(rt, arrays))
    arrays = request(rt, "at", 9)
    arrays["lengths"], arrays["text_present"] = np.array([[4]], np.int64), np.array([[True, False, True, True, True]])
    got = infer("grpc", server.endpoints.grpc, LATEFUSION, arrays)
    assert got["graph"][0, 0] == b"masked"
    assert_same(got, expected(rt, arrays))


def test_lengths_and_per_utterance_availability_reach_the_runtime(server, runtimes):
    rt = runtimes["momke"]
    arrays = request(rt, "atv", 7)
    arrays["lengths"] = np.array([[4]], np.int64)
    arrays["audio_present"] = np.array([[True, False, True, True, False]])
    got = infer("grpc", server.endpoints.grpc, "momke", arrays)
    assert got["graph"][0, 0] == b"masked"
    want = expected(rt, arrays)
    real = want.pop("router_weights_audio")[:, :4]  # absent/padded utterances carry no routing (NaN)
    np.testing.assert_allclose(got.pop("router_weights_audio")[:, :4], real, atol=1e-5)
    assert_same(got, want)


def test_eight_threads_mixed_requests_all_equal_and_counted(server, runtimes):
    metrics = server.endpoints.metrics
    before = {m: success_count(urllib.request.urlopen(metrics).read().decode(), m) for m in MODELS}
    cases = [(m, p, request(runtimes[m], p, 100 + i)) for i, (m, p) in
             enumerate((m, p) for m in MODELS for p in ALL_PATTERNS)]
    wants = [expected(runtimes[m], arrays) for m, _, arrays in cases]
    errors, sent = [], {m: 0 for m in MODELS}
    lock = threading.Lock()

    def client(t: int) -> None:
        protocol = PROTOCOLS[t % 2]
        for k in range(250):
            j = (t * 31 + k) % len(cases)
            model, _, arrays = cases[j]
            try:
                assert_same(infer(protocol, address(server, protocol), model, arrays), wants[j])
            except Exception as exc:  # noqa: BLE001 — collected and reported below
                errors.append(f"thread {t} request {k}: {exc}")
            with lock:
                sent[model] += 1

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(sent.values()) == 2000
    after = {m: success_count(urllib.request.urlopen(metrics).read().decode(), m) for m in MODELS}
    assert {m: after[m] - before[m] for m in MODELS} == sent


def _error(protocol, server, model, arrays) -> str:
    with pytest.raises(tritonclient.utils.InferenceServerException) as info:
        infer(protocol, address(server, protocol), model, arrays)
    return str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(server, runtimes, protocol):
    rt = runtimes["momke"]
    good = request(rt, "av", 1)
    # what only anymodal can judge comes back with anymodal's own message: the one Runtime.predict
    # raises in-process for the same request
    def assert_anymodal_error(model, arrays, needle):
        local = runtimes[model]
        with pytest.raises(InputError) as raised:
            local.predict(**predict_kwargs(local.family.inputs, arrays))
        expected_msg = f"{type(raised.value).__name__}: {raised.value}"
        assert needle in expected_msg
        assert expected_msg in _error(protocol, server, model, arrays)

    assert_anymodal_error("momke", {"lengths": np.array([[3]], np.int64)}, "all modalities are absent")
    assert_anymodal_error("momke", {"audio": good["audio"], "visual": good["visual"][:, :4]},
                          "modalities disagree")
    nan = good["audio"].copy()
    nan[0, 2, 0] = np.nan
    assert_anymodal_error("momke", {"audio": nan}, "NaN or Inf")
    assert_anymodal_error("derl", {"text": request(runtimes["derl"], "t", 0)["text"],
                                   "text_length": np.array([[99]], np.int64)}, "99")
    # the declared contract (the bundle's dims, FP32) is enforced by Triton before the model runs
    assert "audio" in _error(protocol, server, "momke", {"audio": good["audio"][..., :5]})
    assert "audio" in _error(protocol, server, "momke", {"audio": good["audio"].astype(np.float64)})
    assert_same(infer(protocol, address(server, protocol), "momke", good), expected(rt, good))
    assert server.ready()


def test_rt_bench_server_measures_both_transports_beside_in_process(server, bundles, tmp_path):
    from typer.testing import CliRunner

    from anymodal.bench_cli import bench_app

    urls = f"http://{server.endpoints.http},grpc://{server.endpoints.grpc}"
    out = CliRunner().invoke(bench_app, [
        "server", "--server", urls, "--condition", "a,v", "--bundle", str(bundles["momke"]), "--concurrency", "1,2",
        "--model-name", "momke", "--seq-len", "6", "--threads", "1", "--warmup-s", "0.05", "--duration-s", "0.3",
        "--json", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "s.md")], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "rt-bench server — momke" in out.output and "| p50 vs in-process |" in (tmp_path / "s.md").read_text()
    res = json.loads((tmp_path / "s.json").read_text())
    assert [(r["transport"], r["concurrency"]) for r in res["rows"]] == [
        ("in-process", 1), ("http", 1), ("grpc", 1), ("in-process", 2), ("http", 2), ("grpc", 2)]
    for r in res["rows"]:
        assert r["mismatches"] == 0 and r["requests"] > 0 and r["latency_ms"]["p99"] >= r["latency_ms"]["p50"]


def test_graphs_flavor_served_for_real(bundles, tmp_path):
    from anymodal.serve.server import server_dist

    backends = server_dist() / "backends"
    if not (backends / "onnxruntime").is_dir():
        pytest.skip(f"no ONNX Runtime backend in {backends} (the pytriton wheel ships only the Python "
                    "backend); the router is tested in-process in test_triton_repo.py")
    repo = write_triton_repo(bundles["momke"], tmp_path / "repo", flavor="graphs", name="momke")
    rt = Runtime(bundles["momke"], threads=1)
    with TritonServer(repo) as srv:
        for i, pattern in enumerate(ALL_PATTERNS):
            arrays = request(rt, pattern, i)
            assert_same(infer("grpc", srv.endpoints.grpc, "momke", arrays), expected(rt, arrays))


def test_scheduler_flavor_served_for_real(bundles, tmp_path):
    """`scheduler on`: many clients at once, requests of different lengths and patterns, every
    answer equal to Runtime.predict alone."""
    repo = tmp_path / "repo"
    for name, bundle in bundles.items():
        write_triton_repo(bundle, repo, name=name, threads=1, scheduler=True)
    rts = {name: Runtime(b, threads=1) for name, b in bundles.items()}
    work = []
    for i in range(24):
        model = MODELS[i % 2]
        arrays = request(rts[model], ALL_PATTERNS[i % len(ALL_PATTERNS)], 100 + i)
        if model == "momke":  # conversations of different lengths: joined by the scheduler
            arrays = {k: v[:, : 2 + i % 4] for k, v in arrays.items()}
        work.append((model, arrays))
    got: list = [None] * len(work)
    with TritonServer(repo, env=SERVER_ENV) as srv:
        def client(k: int) -> None:
            for j in range(k, len(work), 6):
                try:
                    got[j] = infer("grpc", srv.endpoints.grpc, work[j][0], work[j][1])
                except Exception as exc:  # noqa: BLE001 - shown by the assertion below
                    got[j] = exc

        pool = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
    for (model, arrays), answer in zip(work, got):
        assert isinstance(answer, dict), answer
        assert_same(answer, expected(rts[model], arrays))


def _turn(server, sequence_id, kw: dict, start=False, end=False, client=None) -> dict:
    arrays = {name: x[None] for name, x in kw.items()}  # [1, dim]: one turn per request
    return infer("grpc", server.endpoints.grpc, STREAM, arrays, client=client, sequence_id=sequence_id,
                 sequence_start=start, sequence_end=end)


def _stream_metrics(server) -> dict[str, float]:
    text = urllib.request.urlopen(server.endpoints.metrics).read().decode()
    return {k: metric_sum(text, f"anymodal_sequences_{k}", STREAM) for k in ("open", "ended_total", "evicted_total")}


def _assert_turn(got: dict, want: dict) -> None:
    assert got.pop("graph")[0, 0] in (b"steps", want.pop("graph")[0, 0])  # batched, or the pattern's own
    assert_same(got, want)


@pytest.mark.slow
def test_streaming_over_the_sequence_batcher(server, causal_bundle):
    """4 conversations at once over gRPC, sensors dropping in and out turn by turn, interleaved
    by the sequence batcher: every answer equals Conversation.add on the same turns. A 5th
    sequence whose START turn is refused: its next turns fail alone (StreamClosedError). END
    frees a conversation's state; the one left open is evicted after the idle timeout."""
    rt = Runtime(causal_bundle, threads=1)
    plans = {sid: list(random_turns(6, seed=300 + k)) for k, sid in enumerate(("conv-0", "conv-1", 17, "conv-3"))}
    assert all(len({p for p, _ in plan}) > 1 for plan in plans.values())  # each one's pattern changes
    got: dict = {sid: [] for sid in [*plans, "bad"]}
    start = threading.Barrier(len(got))
    before = _stream_metrics(server)

    import tritonclient.grpc as grpcclient

    def client(sid) -> None:
        conn = grpcclient.InferenceServerClient(server.endpoints.grpc)  # one per conversation, kept
        start.wait(60)
        if sid == "bad":  # NaN in its START turn: refused, so the model never opens it
            nan = {"audio": np.full(DIMS[0], np.nan, np.float32)}
            for k, (s0, e0) in enumerate(((True, False), (False, False), (False, True))):
                try:
                    got[sid].append(_turn(server, sid, nan if k == 0 else plans["conv-0"][0][1], s0, e0, conn))
                except tritonclient.utils.InferenceServerException as exc:
                    got[sid].append(str(exc))
            return
        last = len(plans[sid]) - 1
        for t, (_, kw) in enumerate(plans[sid]):  # conv-3 never sends END: left for the idle timer
            got[sid].append(_turn(server, sid, kw, t == 0, t == last and sid != "conv-3", conn))
        conn.close()

    threads = [threading.Thread(target=client, args=(sid,)) for sid in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for sid, plan in plans.items():
        conv = rt.conversation(max_context=STREAM_CONTEXT)
        assert len(got[sid]) == len(plan)
        for t, ((pattern, kw), answer) in enumerate(zip(plan, got[sid])):
            assert answer["turn"][0, 0] == t and answer["pattern"][0, 0].decode() == pattern
            _assert_turn(answer, turn_outputs(conv.add(**kw)))
    assert "NaN or Inf" in got["bad"][0]
    for late in got["bad"][1:]:
        assert "StreamClosedError: stream 'bad' is not open (its first turn was refused)" in late
    after = _stream_metrics(server)
    assert after["ended_total"] - before["ended_total"] == 4  # 3 conversations + bad's END request
    assert after["open"] + after["evicted_total"] - before["evicted_total"] == 1  # conv-3 (perhaps evicted already)

    deadline = time.monotonic() + 30  # failure guard: eviction is due STREAM_IDLE_S after conv-3's last turn
    while _stream_metrics(server)["evicted_total"] == before["evicted_total"] and time.monotonic() < deadline:
        time.sleep(0.1)
    evicted = _stream_metrics(server)
    assert evicted["evicted_total"] - before["evicted_total"] == 1 and evicted["open"] == 0
    with pytest.raises(tritonclient.utils.InferenceServerException, match="conv-3"):  # Triton's or the model's
        _turn(server, "conv-3", plans["conv-3"][0][1])
    fresh = _turn(server, "conv-3", plans["conv-3"][0][1], start=True, end=True)  # the id starts afresh
    _assert_turn(fresh, turn_outputs(rt.conversation(max_context=STREAM_CONTEXT).add(**plans["conv-3"][0][1])))


def _children(pid: int) -> list[int]:
    from pathlib import Path

    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_rt_serve_starts_prints_endpoints_and_stops_cleanly_on_sigterm(bundles):
    import shutil
    import signal
    import subprocess
    from pathlib import Path

    from anymodal.serve.server import free_port

    ports = [str(free_port()) for _ in range(3)]
    exe = shutil.which("rt-serve", path=str(Path(sys.executable).parent))
    assert exe, "rt-serve is not installed beside this Python"
    proc = subprocess.Popen([exe, "--bundle", str(bundles["momke"]), "--http-port", ports[0], "--grpc-port",
                             ports[1], "--metrics-port", ports[2], "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not lines or "Ctrl-C stops the server" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, "rt-serve ended early:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert f"http://127.0.0.1:{ports[0]}/v2/models/anymodal/infer" in text
        assert f"grpc://127.0.0.1:{ports[1]}" in text and f"http://127.0.0.1:{ports[2]}/metrics" in text
        server_pid = _children(proc.pid)[0]
        arrays = request(Runtime(bundles["momke"], threads=1), "t", 3)
        assert "probs" in infer("http", f"127.0.0.1:{ports[0]}", "anymodal", arrays)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
        assert not group_pids(server_pid), "rt-serve left tritonserver processes behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rt_serve_without_the_server_names_the_extra(bundles, tmp_path):
    import subprocess

    code = ("import importlib.util, sys; importlib.util.find_spec = lambda n: None; "
            "from anymodal.serve.cli import serve_main; sys.argv = ['rt-serve', '--bundle', sys.argv[1]]; serve_main()")
    r = subprocess.run([sys.executable, "-c", code, str(bundles["momke"])], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "pip install 'anymodal[serve]'" in r.stderr


def test_streaming_export_refuses_a_family_without_conversations(tiny_derl_bundle, tmp_path):
    from anymodal.runtime.errors import ExportError

    with pytest.raises(ExportError, match="derl model cannot follow a conversation"):
        write_triton_repo(tiny_derl_bundle, tmp_path / "repo", name="d", streaming=True)
    assert not (tmp_path / "repo").exists()  # refused before anything was written
