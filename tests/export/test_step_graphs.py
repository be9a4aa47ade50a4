"""Causal MoMKE and its step graphs (export/step_graphs.py): the step maths equals the causal full
model, the causal mask hides later utterances, and a causal bundle carries one verified step graph
per pattern sharing the full graphs' weights."""

import json

import numpy as np
import pytest

from anymodal.runtime.errors import BundleError, ExportError
from anymodal.runtime.patterns import ALL_PATTERNS, MODALITIES
from anymodal_testing.helpers import DIMS, make_model, random_turns

torch = pytest.importorskip("torch")


def _conversation(L=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(1, L, d, generator=g) for d in DIMS]
    avail = torch.rand(1, L, 3, generator=g) < 0.5
    avail[0, :, 1] |= ~avail[0].any(-1)  # every utterance has a modality
    return xs, avail


@pytest.mark.parametrize("preset", ["paper", "authors"])
def test_step_by_step_equals_the_causal_full_model(preset):
    model = make_model(depth=2, causal=True, preset=preset)
    xs, avail = _conversation()
    L, C = avail.shape[1], 12
    n = 2 * model.cfg.depth
    with torch.no_grad():
        logits, weights = model(*xs, torch.ones(1, L, dtype=torch.bool), avail)
        # caches preallocated at C slots; unfilled slots hold garbage that must not matter
        caches = {m: [torch.randn(3, 2, C, 8) for _ in range(n)] for m in MODALITIES}
        filled = dict.fromkeys(MODALITIES, 0)
        for i in range(L):
            pat = "".join(m for k, m in enumerate(MODALITIES) if avail[0, i, k])
            step_x = {m: xs[MODALITIES.index(m)][:, i:i + 1] for m in pat}
            lg, w, slots = model.step(step_x, torch.tensor([i]), {m: caches[m] for m in pat},
                                      {m: torch.tensor([filled[m]]) for m in pat})
            for m in pat:
                for k in range(n):
                    caches[m][k][:, :, filled[m]] = slots[m][k]
                filled[m] += 1
            torch.testing.assert_close(lg[0, 0], logits[0, i], atol=1e-5, rtol=0)
            for k, m in enumerate(pat):
                torch.testing.assert_close(w[0, 0, k], weights[0, i, MODALITIES.index(m)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
def test_causal_mask_hides_later_utterances(causal):
    model = make_model(depth=2, causal=causal)
    xs, avail = _conversation()
    avail[:] = True
    changed = [x.clone() for x in xs]
    for x in changed:
        x[0, 6:] += 3.0  # later utterances differ
    mask = torch.ones(1, xs[0].shape[1], dtype=torch.bool)
    with torch.no_grad():
        before, _ = model(*xs, mask, avail)
        after, _ = model(*changed, mask, avail)
    earlier_same = torch.allclose(before[0, :6], after[0, :6], atol=1e-6)
    assert earlier_same == causal  # bidirectional experts do see the future
    assert not torch.allclose(before[0, 6:], after[0, 6:])
    assert model.cfg.sources()["causal"].startswith("anymodal: streaming, paper silent" if causal else "paper")


def test_bidirectional_model_has_no_step():
    with pytest.raises(ValueError, match="bidirectional"):
        make_model().step({"a": torch.zeros(1, 1, DIMS[0])}, torch.tensor([0]), {"a": []}, {"a": torch.tensor([0])})


def _external_offsets(path):
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {dict((e.key, e.value) for e in init.external_data)["offset"]
            for init in proto.graph.initializer if init.external_data}


def test_causal_bundle_lists_verified_deduplicated_step_graphs(causal_bundle, small_bundle):
    bundle = causal_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    variant = manifest["variants"]["fp32"]
    steps = variant["step_graphs"]
    assert sorted(steps) == sorted([f"step_{p}" for p in ALL_PATTERNS] + ["steps"])
    assert manifest["model"]["config"]["causal"] is True
    assert manifest["model"]["config"]["sources"]["causal"].startswith("anymodal: streaming, paper silent")
    info = steps["step_at"]
    caches = [f"past_{n}_{k}" for n in ("audio", "text") for k in range(4)]  # K, V of 2 blocks
    assert [t["name"] for t in info["inputs"]] == ["audio", "text", "position", *caches[:4], "cached_audio",
                                                   *caches[4:], "cached_text"]
    assert [t["name"] for t in info["outputs"]] == ["logits", "router_weights", "new_audio", "new_text"]
    assert info["inputs"][3]["shape"] == [3, 2, "context", 8]  # experts, heads, slots, d / heads
    assert info["outputs"][2]["shape"] == [4, 3, 2, 8]
    batched = steps["steps"]  # S streams, any patterns: a stream axis, pool rows, presence, fills
    caches = [f"past_{n}_{k}" for n in ("audio", "text", "visual") for k in range(4)]
    assert [t["name"] for t in batched["inputs"]] == ["audio", "text", "visual", "position", "stream", "present",
                                                      *caches[:4], "cached_audio", *caches[4:8], "cached_text",
                                                      *caches[8:], "cached_visual"]
    assert batched["inputs"][0]["shape"] == ["streams", 1, DIMS[0]]
    assert batched["inputs"][5] == {"name": "present", "shape": ["streams", 3], "dtype": "bool"}
    assert batched["inputs"][6]["shape"] == ["pool", 3, 2, "context", 8]
    assert batched["inputs"][10]["shape"] == ["streams"]
    assert [t["shape"] for t in batched["outputs"]] == [["streams", 1, 4], ["streams", 1, 3, 3]] + \
        [["streams", 4, 3, 2, 8]] * 3
    for name in steps:  # verified like the full graphs, empty caches included
        parity = manifest["parity"]["fp32"][name]
        assert parity["max_error"] <= 1e-4
        if name == "steps":  # a batch of one first turn; rows of different fills and patterns
            assert [1, 1, [0], [[0, 0, 0]], ["atv"]] in parity["batches"]
            assert any(len({tuple(f) for f in fills}) == len(fills) > 1 and len(set(pats)) == len(ALL_PATTERNS)
                       for _, _, _, fills, pats in parity["batches"])
        else:
            assert [1, [0, 0, 0]] in parity["caches"]
    # every weight of a step graph is one the full graphs already store in weights.bin
    full = set().union(*(_external_offsets(bundle / variant["graphs"][g]["file"]) for g in variant["graphs"]))
    for name, info in steps.items():
        assert _external_offsets(bundle / info["file"]) <= full, name
    bidirectional = json.loads((small_bundle / "manifest.json").read_text())
    assert "step_graphs" not in bidirectional["variants"]["fp32"]


def test_manifest_step_graph_outside_the_file_table_refused(causal_bundle, tmp_path):
    import shutil

    from anymodal.runtime.bundle import Bundle

    bundle = causal_bundle
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["variants"]["fp32"]["step_graphs"]["step_a"]["file"] = "graphs/elsewhere.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="step_graphs/step_a: 'graphs/elsewhere.onnx' is not in the hashed"):
        Bundle(copy)


def test_verification_catches_a_wrong_step_graph(causal_bundle):
    from anymodal.export.step_graphs import verify_step_graphs
    from anymodal.runtime.backends.ort import OrtCpuBackend
    from anymodal.runtime.bundle import Bundle

    bundle = causal_bundle
    backend = OrtCpuBackend(Bundle(bundle), threads=1)
    with pytest.raises(ExportError, match="parity failed: step graph 'step_a'"):
        verify_step_graphs(make_model(depth=2, causal=True, seed=7), backend, "fp32")  # other weights than the bundle's


def test_verification_catches_a_wrong_batched_step_graph(causal_bundle):
    from anymodal.export.streams_step_graphs import verify_streams_step_graphs
    from anymodal.runtime.backends.ort import OrtCpuBackend
    from anymodal.runtime.bundle import Bundle

    backend = OrtCpuBackend(Bundle(causal_bundle), threads=1)
    with pytest.raises(ExportError, match="parity failed: batched step graph 'steps'"):
        verify_streams_step_graphs(make_model(depth=2, causal=True, seed=7), backend, "fp32")


@pytest.mark.parametrize("preset", ["paper", "authors"])
def test_batched_step_rows_equal_single_steps(preset):
    """MoMKE.step_streams: each stream's row equals step() of its own pattern on that stream
    alone, streams at different fills (0 included), pool rows out of order, patterns mixed;
    unfilled slots are garbage."""
    model = make_model(depth=2, causal=True, preset=preset)
    g = torch.Generator().manual_seed(3)
    C, N, rows, n = 7, 5, [3, 0, 4, 1], 2 * model.cfg.depth
    patterns = ["at", "v", "atv", "t"]
    fills = {"a": [2, 0, 6, 1], "t": [5, 1, 0, 3], "v": [0, 4, 2, 6]}
    present = torch.tensor([[m in p for m in MODALITIES] for p in patterns])
    pools = {m: [torch.randn(N, 3, 2, C, 8, generator=g) for _ in range(n)] for m in MODALITIES}
    xs = {m: torch.randn(len(rows), 1, DIMS[k], generator=g) * present[:, k, None, None]
          for k, m in enumerate(MODALITIES)}
    position = torch.tensor([6, 2, 5, 3])
    with torch.no_grad():
        lg, w, slots = model.step_streams(xs, position, pools, torch.tensor(rows),
                                          {m: torch.tensor(f) for m, f in fills.items()}, present)
        for s, (row, pat) in enumerate(zip(rows, patterns)):
            lg1, w1, slots1 = model.step({m: xs[m][s:s + 1] for m in pat}, position[s:s + 1],
                                         {m: [p[row] for p in pools[m]] for m in pat},
                                         {m: torch.tensor([fills[m][s]]) for m in pat})
            torch.testing.assert_close(lg[s:s + 1], lg1, atol=1e-5, rtol=0)
            torch.testing.assert_close(w[s:s + 1, :, [MODALITIES.index(m) for m in pat]], w1, atol=1e-5, rtol=0)
            for m in pat:
                torch.testing.assert_close(slots[m][s], slots1[m], atol=1e-5, rtol=0)


def test_stream_and_rescore_agree_on_a_causal_bundle(causal_bundle):
    """A backend without step graphs (e.g. TensorRT engines built for the full graphs only)
    re-scores the window with the causal full graph: the same predictions as streaming."""
    from anymodal.runtime import Runtime
    from anymodal.runtime.backends.ort import OrtCpuBackend
    from anymodal.runtime.bundle import Bundle

    class FullGraphsOnly(OrtCpuBackend):
        def serves(self, graph):
            return not graph.startswith("step_")

    bundle = causal_bundle
    b = Bundle(bundle)
    streaming = Runtime.with_backend(b, OrtCpuBackend(b, threads=1)).conversation(max_context=4)
    rescoring = Runtime.with_backend(b, FullGraphsOnly(b, threads=1)).conversation(max_context=4)
    assert streaming.mode == "stream" and rescoring.mode == "rescore"
    assert "no step graphs" in rescoring.mode_reason
    for pattern, turn in random_turns(11):
        s, r = streaming.add(**turn), rescoring.add(**turn)
        assert s.graph == f"step_{pattern}" and r.graph in (pattern, "masked")
        assert np.abs(s.probs - r.probs).max() <= 1e-4 and s.label == r.label


def test_step_graphs_read_only_the_filled_cache_slots(causal_bundle):
    """No work on empty slots: every cache input of a single-stream step graph feeds exactly
    one Slice (its filled prefix, bounded by cached_<m>), never a MatMul over all max_context
    slots, so a turn's cost follows the conversation, not the preallocated buffers."""
    import onnx

    variant = json.loads((causal_bundle / "manifest.json").read_text())["variants"]["fp32"]
    for name, info in variant["step_graphs"].items():
        if name == "steps":  # the batched graph gathers its streams' filled rows (momke_cache_rows.py)
            continue
        graph = onnx.load(str(causal_bundle / info["file"]), load_external_data=False).graph
        readers: dict[str, list[str]] = {}
        for node in graph.node:
            for i in node.input:
                readers.setdefault(i, []).append(node.op_type)
        caches = [i.name for i in graph.input if i.name.startswith("past_")]
        assert caches and all(readers[c] == ["Slice"] for c in caches), (name, {c: readers[c] for c in caches})
