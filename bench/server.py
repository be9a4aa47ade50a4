"""`rt-bench server`: client-side latency and throughput against a running Triton server,
HTTP and/or gRPC, at several concurrencies, beside the in-process Runtime on the same request
(same thread count calling it). Every answer is checked against the in-process one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from anymodal.runtime import Runtime
from anymodal.runtime.errors import InputError
from anymodal.runtime.patterns import parse_pattern

from .machine import machine_info
from .timing import latency_stats
from .variants import make_request

PROTOCOLS = ("http", "grpc")


def parse_servers(spec: str) -> dict[str, str]:
    """'http://h:8000,grpc://h:8001' -> {'http': 'h:8000', 'grpc': 'h:8001'}."""
    out = {}
    for url in (s.strip() for s in spec.split(",") if s.strip()):
        u = urlparse(url)
        if u.scheme not in PROTOCOLS or not u.netloc:
            raise InputError(f"--server: {url!r} is not http://HOST:PORT or grpc://HOST:PORT")
        out[u.scheme] = u.netloc
    if not out:
        raise InputError("--server: give http://HOST:PORT and/or grpc://HOST:PORT")
    return out


def triton_caller(protocol: str, address: str, model: str, request: dict[str, np.ndarray]) -> Callable:
    """A zero-argument callable sending `request` with its own client; returns the scores/probs."""
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    conn = client.InferenceServerClient(address)
    inputs = []
    for name, arr in request.items():
        t = client.InferInput(name, list(arr.shape), "FP32")
        t.set_data_from_numpy(arr)
        inputs.append(t)

    def call():
        result = conn.infer(model, inputs)
        out = result.as_numpy("probs")
        return out if out is not None else result.as_numpy("scores")

    return call


def _answer(pred) -> np.ndarray:
    return pred.probs if pred.probs is not None else (pred.scores[:, None] if pred.scores.ndim == 1
                                                      else pred.scores)


def measure_concurrent(make_call: Callable[[], Callable], concurrency: int, warmup_s: float,
                       duration_s: float, expected: np.ndarray) -> dict:
    """`concurrency` threads, each calling its own callable until the time is spent."""
    calls = [make_call() for _ in range(concurrency)]
    lat: list[list[float]] = [[] for _ in calls]
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        start.wait()
        t_warm = time.perf_counter() + warmup_s
        while time.perf_counter() < t_warm:
            calls[i]()
        t_end = time.perf_counter() + duration_s
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            got = calls[i]()
            lat[i].append((time.perf_counter() - t0) * 1e3)
            if not np.allclose(got, expected, atol=1e-5):
                errors.append(f"thread {i}: answer differs from in-process by "
                              f"{float(np.abs(got - expected).max()):.2e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0 - warmup_s
    ms = np.concatenate([np.asarray(x) for x in lat])
    return {"latency_ms": latency_stats(ms), "requests": int(ms.size),
            "throughput_per_s": ms.size / wall, "mismatches": len(errors), "first_mismatch": errors[:1]}


def bench_server(servers: dict[str, str], bundle_dir, conditions, concurrency=(1, 8), model: str = "anymodal",
                 seq: int = 24, threads: int | None = None, warmup_s: float = 0.5, duration_s: float = 3.0,
                 progress=print) -> dict:
    rt = Runtime(bundle_dir, backend="auto", threads=threads)
    rows = []
    for cond in conditions:
        pattern = parse_pattern(cond)
        request = make_request(rt.bundle, pattern, 1, seq if rt.bundle.family.inputs.caller_sets_length else None)
        expected = _answer(rt.predict(**request))
        for n in concurrency:
            progress(f"condition {{{','.join(pattern)}}} concurrency {n} …")
            variants = {"in-process": lambda: (lambda: _answer(rt.predict(**request)))}
            for proto, address in servers.items():
                variants[proto] = lambda proto=proto, address=address: triton_caller(proto, address, model, request)
            for name, make in variants.items():
                res = measure_concurrent(make, n, warmup_s, duration_s, expected)
                rows.append({"condition": pattern, "transport": name, "concurrency": n, **res})
    for r in rows:  # the in-process figure beside each transport
        base = next(x for x in rows if x["condition"] == r["condition"] and x["concurrency"] == r["concurrency"]
                    and x["transport"] == "in-process")
        r["p50_vs_in_process"] = r["latency_ms"]["p50"] / base["latency_ms"]["p50"]
    return {"servers": servers, "model": model, "bundle": str(bundle_dir), "model_kind": rt.bundle.model["kind"],
            "seq_len": seq if rt.bundle.family.inputs.caller_sets_length else None, "rows": rows, "machine": machine_info()}


def server_rows(result: dict):
    header = ["condition", "transport", "concurrency", "p50 ms", "p90 ms", "p99 ms", "req/s", "p50 vs in-process",
              "mismatches"]
    rows = [["{" + ",".join(r["condition"]) + "}", r["transport"], str(r["concurrency"]),
             f"{r['latency_ms']['p50']:.2f}", f"{r['latency_ms']['p90']:.2f}", f"{r['latency_ms']['p99']:.2f}",
             f"{r['throughput_per_s']:.1f}", f"{r['p50_vs_in_process']:.2f}×", str(r["mismatches"])]
            for r in result["rows"]]
    return header, rows


def bench_server_command(server: str, condition: str, bundle: Path, concurrency: list[int], model_name: str,
                         seq_len: int, threads: int | None, warmup_s: float, duration_s: float,
                         json_out: Path | None, markdown: Path | None, console) -> dict:
    """`rt-bench server`: run, print the table, write JSON / markdown."""
    from anymodal.runtime.jsonio import write_json

    from .tables import markdown_table, rich_table

    result = bench_server(parse_servers(server), bundle, [c for c in condition.split(";") if c], concurrency,
                          model_name, seq_len, threads, warmup_s, duration_s,
                          progress=lambda s: console.print(f"[dim]{s}[/dim]"))
    header, rows = server_rows(result)
    m = result["machine"]
    console.print(rich_table(f"rt-bench server — {result['model_kind']} — {m['cpu']} ({m['cores']} cores)",
                             header, rows))
    if json_out:
        write_json(result, json_out)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(markdown_table(header, rows) + f"\n\nmachine: {m['cpu']} ({m['cores']} cores), "
                            f"{m['timestamp']}\n")
    return result
