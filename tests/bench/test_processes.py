"""rt-bench's default mode: one worker process per variant, alternating rounds, the median of
the rounds' medians; a failing worker is a typed error naming its variant; --in-process stays
an option. Schema and behaviour only, no timing thresholds."""

import numpy as np
import pytest

from anymodal.bench.processes import WorkerPool, measure_rounds
from anymodal.bench.run import run_bench
from anymodal.bench.timing import paired_ratio, round_stats, split_rounds
from anymodal.runtime.errors import BenchWorkerError


class FakeWorker:
    """Records the order in which measure_rounds asks the workers."""

    def __init__(self, name, log, ms):
        self.name, self.log, self.ms = name, log, ms

    def ask(self, request, timeout_s):
        self.log.append((self.name, request["seconds"]))
        return {"ms": [self.ms] * request["min_calls"]}


def test_rounds_alternate_and_discard_the_warm_up():
    log = []
    workers = {n: FakeWorker(n, log, ms) for n, ms in (("x", 1.0), ("y", 2.0))}
    out = measure_rounds(workers, warmup_s=0.5, duration_s=0.4, rounds=4, min_calls=2)
    assert log[:2] == [("x", 0.5), ("y", 0.5)]  # warm-up, then rounds in a rotating order
    assert [n for n, _ in log[2:]] == ["x", "y", "y", "x", "x", "y", "y", "x"]
    assert all(s == pytest.approx(0.1) for _, s in log[2:])  # duration shared out over the rounds
    assert len(out["x"]) == 4 and all(list(r) == [1.0, 1.0] for r in out["x"])


def test_round_statistics_and_paired_ratio():
    rounds = [np.array([1.0, 3.0]), np.array([4.0]), np.array([10.0, 10.0, 30.0])]
    assert round_stats(rounds) == {"count": 3, "p50": 4.0, "lo": 2.0, "hi": 10.0, "p50s": [2.0, 4.0, 10.0]}
    r = paired_ratio([np.array([4.0]), np.array([9.0]), np.array([8.0])],
                     [np.array([2.0]), np.array([3.0]), np.array([1.0])])
    assert r == {"median": 3.0, "lo": 2.0, "hi": 8.0, "rounds": 3}
    assert [c.tolist() for c in split_rounds(np.arange(5.0), 2)] == [[0.0, 1.0, 2.0], [3.0, 4.0]]


def test_a_failing_worker_is_a_typed_error_naming_its_variant(tmp_path):
    with WorkerPool() as pool, pytest.raises(BenchWorkerError, match="worker of variant 'ort'.*BundleError"):
        pool.build(["ort"], tmp_path / "no-bundle", None, "a", 1, 6, 1, False)


@pytest.mark.slow  # > 2 s on 2 cores: make test runs it, test-fast does not
def test_anymodal_rows_run_without_torch_and_in_process_is_an_option(small_bundle):
    kw = dict(threads=1, duration_s=0.05, warmup_s=0.02, progress=lambda s: None, shapes=((1, 6),), rounds=2)
    res = run_bench(["a"], small_bundle, None, "ort,runtime", **kw)
    assert res["isolation"] == {"mode": "processes", "rounds": 2}
    assert {n: v["torch_imported"] for n, v in res["variants"].items()} == {"ort": False, "runtime": False}
    assert res["variants"]["ort"]["rounds"]["count"] == 2
    inproc = run_bench(["a"], small_bundle, None, "ort,runtime", in_process=True, **kw)
    assert inproc["isolation"] == {"mode": "in-process", "rounds": 2}
    assert "torch_imported" not in inproc["variants"]["ort"]
