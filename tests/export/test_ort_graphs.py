"""The ORT-optimised copy of every graph (com.microsoft contrib ops, export/ort_graphs.py), as
ONNX Runtime serves it, against the unfused traced graph run with every optimisation off:
<= 1e-4 fp32, all 7 patterns + masked, MoMKE (both presets) and DERL, at full, padded and
all-absent-key batches."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anymodal.export.specs import GRAPH_NAMES, model_graph_specs
from anymodal.export.torch_export import example_feeds, export_graph
from anymodal.train.models.momke import MoMKE, MoMKEConfig
from anymodal_testing.helpers import DIMS, make_derl


def _session(path, level):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _momke(preset):
    import torch

    torch.manual_seed(0)
    return MoMKE(MoMKEConfig.preset_config(preset, input_dims=DIMS, hidden=16, depth=2, heads=2)).eval()


@pytest.fixture(scope="module", params=["momke-paper", "momke-authors", "derl"])
def family_model(request):
    return make_derl() if request.param == "derl" else _momke(request.param.split("-")[1])


def _edge_feeds(specs, batch, seq, seed):
    """Padded rows (lengths < L, one conversation of length 1) and, in the masked graphs, keys
    all absent: a modality missing from a whole conversation, and an utterance with none."""
    feeds = example_feeds(specs, batch, seq, seed)
    for name, value in feeds.items():
        if name == "mask" or name.endswith("_mask"):
            value[-1, 1:] = False  # the last row: one real item
        if name == "avail":
            value[0, :, 0] = False  # audio absent from the whole first conversation
            value[1, 0, :] = False  # no modality at all for one utterance
        elif name.endswith("_avail"):
            value[0, :] = False  # this modality absent from the first sample
    return feeds


def _real(value, feeds):
    """Outputs of real items only (padding rows are unspecified)."""
    mask = feeds.get("mask")
    return value[mask] if mask is not None and value.ndim >= 2 and value.shape[:2] == mask.shape else value


@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_ort_copy_matches_the_unfused_graph(family_model, graph, tmp_path):
    raw = export_graph(family_model, graph, tmp_path / "raw.onnx", "fp32", fold=False)
    copy = export_graph(family_model, graph, tmp_path / "copy.onnx", "fp32", ort_ops=True)
    assert any(n.domain == "com.microsoft" and n.op_type == "MultiHeadAttention"
               for n in onnx.load(str(copy)).graph.node), "no contrib attention in the ORT copy"
    ref_sess, served = _session(raw, "ORT_DISABLE_ALL"), _session(copy, "ORT_ENABLE_ALL")
    specs = model_graph_specs(family_model, graph)[0]
    cases = [example_feeds(specs, 1, 24, seed=1), example_feeds(specs, 3, 5, seed=2),
             _edge_feeds(specs, 4, 9, seed=3)]
    for i, feeds in enumerate(cases):
        for name, r, got in zip(("logits", "router_weights"), ref_sess.run(None, feeds), served.run(None, feeds)):
            assert np.isfinite(got).all(), (graph, i, name)
            err = float(np.max(np.abs(_real(r, feeds) - _real(got, feeds))))
            assert err <= 1e-4, (graph, i, name, err)


def test_ort_copy_has_fewer_nodes_as_served(tmp_path):
    """The point of the copy: fewer ops after ORT's own session fusions (MoMKE, {a}: the
    attention chain of every block is one node, ≥ 5 fewer per block; 2 blocks here)."""
    model = _momke("paper")
    counts = {}
    for flavour in ("portable", "ort"):
        path = export_graph(model, "a", tmp_path / f"{flavour}.onnx", "fp32", ort_ops=flavour == "ort")
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(tmp_path / f"{flavour}.served.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        counts[flavour] = len(onnx.load(opts.optimized_model_filepath).graph.node)
    assert counts["ort"] <= counts["portable"] - 5 * 2, counts
