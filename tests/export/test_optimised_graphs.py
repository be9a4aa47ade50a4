"""The graphs as stored (constant-folded by ORT's portable basic level) and as ORT serves them
(its extended/all-level fusions: FusedMatMul, Gelu, LayerNorm fusions) against the unfused
traced graph run with every optimisation off: <= 1e-4 fp32, all 7 patterns + masked, both
families."""

import shutil

import numpy as np
import onnxruntime as ort
import pytest

from anymodal.export.ort_optimize import fold_constants
from anymodal.export.specs import GRAPH_NAMES, model_graph_specs
from anymodal.export.torch_export import example_feeds, export_graph
from anymodal_testing.helpers import make_derl, make_model


def _session(path, level):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=["momke", "derl"])
def family_model(request):
    return make_model(hidden=16, depth=2) if request.param == "momke" else make_derl()


@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_folded_and_fused_graphs_match_the_unfused_graph(family_model, graph, tmp_path):
    raw = export_graph(family_model, graph, tmp_path / "raw.onnx", "fp32", fold=False)
    folded = fold_constants(shutil.copy(raw, tmp_path / "folded.onnx"))
    ref_sess = _session(raw, "ORT_DISABLE_ALL")
    candidates = {"stored": _session(folded, "ORT_DISABLE_ALL"), "served": _session(folded, "ORT_ENABLE_ALL")}
    for i, (batch, seq) in enumerate(((1, 24), (3, 5))):
        feeds = example_feeds(model_graph_specs(family_model, graph)[0], batch, seq, seed=i)
        ref = ref_sess.run(None, feeds)
        for name, sess in candidates.items():
            for r, got in zip(ref, sess.run(None, feeds)):
                err = float(np.max(np.abs(r - got)))
                assert err <= 1e-4, (graph, name, batch, seq, err)
