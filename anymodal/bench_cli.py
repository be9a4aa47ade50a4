"""`rt-bench`: side-by-side latency per availability condition (the main job, its top-level
options), and every other measurement as a subcommand that `rt-bench --help` lists. Each command
parses its own options and calls into anymodal.bench, imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anymodal.choices import CONDITIONS, Compare, OnOff
from anymodal.cli_app import MAIN_JOB, app, console, ints, main, subcommand_invoked

bench_app = app()

CONDITION_HELP = f"Pattern to serve: {CONDITIONS} (or a,v; or use --all-conditions)."
BUNDLE_HELP = "Bundle folder (default: built-in paper-sized --model)."
MODEL_HELP = "Model family of the default bundle (a registered family; default: the first)."
BATCH_HELP = "Batch sizes, e.g. 1,8 (default sweep: B1×L24 and B16×L50)."
SEQ_LEN_HELP = "MoMKE conversation lengths, e.g. 24 (default) or 12,48; DERL uses its sequence lengths."
THREADS_HELP = "Intra-op threads for every variant (default: all cores)."
JSON_HELP = "Write the results as JSON."
MARKDOWN_HELP = "Write a markdown report."


def _conditions(condition: Optional[str], all_conditions: bool):
    from anymodal.runtime.errors import InputError

    if all_conditions == (condition is not None):
        raise InputError("give exactly one of --condition PATTERN or --all-conditions")
    return "all" if all_conditions else [condition]


def _shapes(batch: Optional[str], seq_len: Optional[str]):
    """(batches, seq_lens, shapes): the default sweep when neither is given."""
    from anymodal.bench.run import DEFAULT_SHAPES

    return (ints(batch, "--batch") if batch else (1,), ints(seq_len, "--seq-len") if seq_len else None,
            DEFAULT_SHAPES if batch is None and seq_len is None else None)


def _pairs(spec: str) -> list[tuple[int, int]]:
    """'1x24,16x50' -> [(1, 24), (16, 50)]."""
    from anymodal.runtime.errors import InputError

    try:
        pairs = [tuple(int(v) for v in s.split("x")) for s in spec.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise InputError(f"--shapes takes BxL pairs like 1x24,16x50 — got {spec!r}")
    return pairs


@bench_app.callback(**MAIN_JOB)
def bench(
    ctx: typer.Context,
    condition: Optional[str] = typer.Option(None, help=CONDITION_HELP),
    all_conditions: bool = typer.Option(False, "--all-conditions", help="All 7 conditions in one table."),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    run: Optional[Path] = typer.Option(None, help="Run folder for the PyTorch reference of --bundle."),
    backend: str = typer.Option("all", help="Variants, comma-separated (reference-eager, reference-compiled, "
                                            "reference-int8, torch, ort-masked, ort, ort-int8, runtime, …) or all."),
    batch: Optional[str] = typer.Option(None, help=BATCH_HELP),
    seq_len: Optional[str] = typer.Option(None, help=SEQ_LEN_HELP),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
    warmup_s: float = typer.Option(1.0, help="Warm-up seconds per condition."),
    duration_s: float = typer.Option(3.0, help="Measured seconds per condition."),
    spinning: OnOff = typer.Option(OnOff.off, help="Intra-op spinning of the runtime and session-run rows "
                                                    "(the ort / ort-spin rows always show off / on)."),
    in_process: bool = typer.Option(False, "--in-process", help="All variants in this one process, interleaved "
                                    "call by call (default: each variant in a process of its own; PyTorch's "
                                    "and ORT's thread pools side by side slow each other)."),
    rounds: int = typer.Option(10, help="Alternating rounds per condition; the figure is the median of the "
                                        "rounds' medians, with their range."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
    markdown: Optional[Path] = typer.Option(None, help=MARKDOWN_HELP),
    plot: Optional[Path] = typer.Option(None, help="Write a PNG latency plot (default beside --json)."),
):
    """Latency, throughput, efficiency and parameters per availability condition.

    Without a subcommand: the authors' computation in PyTorch (eager, compiled, int8), ORT masked,
    ORT specialised (and GPU backends), each in a process of its own, in alternating rounds.
    The subcommands are the other measurements; their options follow the subcommand's name."""
    if subcommand_invoked(ctx):
        return
    from anymodal.bench.report import markdown_report, plot_latency, print_result, write_outputs
    from anymodal.bench.run import run_bench

    conditions = _conditions(condition, all_conditions)
    batches, seq_lens, shapes = _shapes(batch, seq_len)
    out = console()
    result = run_bench(conditions, bundle, run, backend, batches, seq_lens, threads, warmup_s, duration_s,
                       progress=lambda s: out.print(f"[dim]{s}[/dim]"), model=model, shapes=shapes,
                       spinning=spinning == OnOff.on, in_process=in_process, rounds=rounds)
    print_result(result, out)
    write_outputs(result, json_out, markdown, markdown_report, plot, plot_latency)


@bench_app.command("profile")
def bench_profile(
    out: Path = typer.Option(..., metavar="DIR", help="Folder for the per-op tables (profile.md, one JSON "
                                                      "per graph and shape)."),
    condition: Optional[str] = typer.Option(None, help=CONDITION_HELP),
    all_conditions: bool = typer.Option(False, "--all-conditions", help="Every served graph."),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    batch: Optional[str] = typer.Option(None, help=BATCH_HELP),
    seq_len: Optional[str] = typer.Option(None, help=SEQ_LEN_HELP),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads (default: all cores)."),
    spinning: OnOff = typer.Option(OnOff.off, help="ONNX Runtime intra-op spinning."),
):
    """ORT's per-op profile of each served graph: op type, nodes, µs, share, MFLOP, GFLOP/s and %
    of a measured matmul peak."""
    from anymodal.bench.profile_cli import bench_profile_command

    batches, seq_lens, shapes = _shapes(batch, seq_len)
    bench_profile_command(_conditions(condition, all_conditions), bundle, model, batches, seq_lens, shapes,
                          threads, spinning == OnOff.on, out, console())


@bench_app.command("stream")
def bench_stream(
    condition: Optional[str] = typer.Option(None, help="The conversation's sensors, e.g. a,v (default a,t,v)."),
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized causal "
                                                     "MoMKE)."),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads (default: all cores)."),
    turns: int = typer.Option(200, help="Turns in the conversation."),
    max_context: Optional[int] = typer.Option(None, help="Conversation max_context (default: --turns)."),
    drop: Optional[str] = typer.Option(None, help="Sensors absent per turn range, e.g. v@5-12,a@20-22 "
                                                  "(1-based, inclusive)."),
    repeats: int = typer.Option(3, help="Timed passes over the conversation."),
    precision: Optional[str] = typer.Option(None, help="The bundle variant both ways run, e.g. int8 (default: "
                                                       "the bundle's default precision)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
    markdown: Optional[Path] = typer.Option(None, help=MARKDOWN_HELP),
    plot: Optional[Path] = typer.Option(None, help="Write a PNG of the per-turn latency (default beside --json)."),
):
    """A live conversation turn by turn: streaming (Conversation.add) vs re-scoring the window."""
    from anymodal.bench.stream import bench_stream_command

    bench_stream_command(condition, bundle, threads, turns, max_context, drop, repeats, json_out, markdown, plot,
                         console(), precision)


@bench_app.command("streams")
def bench_streams(
    streams: str = typer.Option(..., "--streams", metavar="N[,N…]", help="Numbers of live conversations at "
                                                                         "once, e.g. 16,64."),
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized causal "
                                                     "MoMKE)."),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads (default: all cores)."),
    turns: int = typer.Option(50, help="Turns per stream."),
    max_context: int = typer.Option(64, help="Conversation max_context."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
    markdown: Optional[Path] = typer.Option(None, help=MARKDOWN_HELP),
):
    """N live conversations at once, as fast as possible: the Scheduler vs one turn at a time."""
    from anymodal.bench.streams import bench_streams_command

    bench_streams_command(ints(streams, "--streams"), bundle, threads, turns, max_context, json_out, markdown,
                          console())


@bench_app.command("server")
def bench_server(
    server: str = typer.Option(..., help="http://HOST:PORT and/or grpc://HOST:PORT, comma-separated."),
    condition: str = typer.Option(..., help="Patterns to request, e.g. a,v (several: 'av;atv')."),
    bundle: Path = typer.Option(..., help="The bundle the server serves (requests and the in-process figure)."),
    concurrency: str = typer.Option("1,8", help="Client threads, e.g. 1,8."),
    model_name: str = typer.Option("anymodal", help="Model name on the server."),
    seq_len: int = typer.Option(24, help="MoMKE conversation length (DERL uses its sequence lengths)."),
    threads: Optional[int] = typer.Option(None, help="In-process Runtime threads (default: all cores)."),
    warmup_s: float = typer.Option(0.5, help="Warm-up seconds per measurement."),
    duration_s: float = typer.Option(3.0, help="Measured seconds per transport and concurrency."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
    markdown: Optional[Path] = typer.Option(None, help="Write the table as markdown."),
):
    """Against a running Triton server (rt-serve): p50/p90/p99 and requests per second per transport,
    beside the in-process Runtime; every answer checked against in-process."""
    from anymodal.bench.server import bench_server_command

    bench_server_command(server, condition, bundle, list(ints(concurrency, "--concurrency")), model_name, seq_len,
                         threads, warmup_s, duration_s, json_out, markdown, console())


@bench_app.command("overhead")
def bench_overhead(
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized MoMKE)."),
    conditions: str = typer.Option("a,at,atv", help="Patterns, comma-separated (at = audio and text)."),
    shapes: str = typer.Option("1x24", help="BxL pairs, comma-separated, e.g. 1x24,16x50."),
    calls: int = typer.Option(1000, help="Calls per shape and condition."),
    threads: int = typer.Option(2, help="ONNX Runtime intra-op threads."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
):
    """Where Runtime.predict's time goes: inside ONNX Runtime's graph call and outside it (request
    checks, graph choice, feeds, output checks, the Prediction), and its cost over a plain
    session.run (whose own Python around that call is timed too), min / p10 / p50 over --calls."""
    from anymodal.bench.overhead import overhead_command

    overhead_command(bundle, conditions.split(","), _pairs(shapes), calls, threads, json_out, typer.echo)


@bench_app.command("spinning")
def bench_spinning(
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized MoMKE)."),
    condition: str = typer.Option("a", help=f"Pattern to serve: {CONDITIONS} (or a,v)."),
    threads: int = typer.Option(2, help="ONNX Runtime intra-op threads."),
    blocks: int = typer.Option(6, help="Alternating blocks of 40 calls per mode."),
    gap_ms: float = typer.Option(2.0, help="Pause between calls, as a server has between requests (ms)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
):
    """ORT intra-op spinning off vs on: latency and the CPU spent per request (spinning workers keep
    burning CPU after a call returns, which a latency row cannot see)."""
    from anymodal.bench.spinning import spinning_command

    spinning_command(bundle, condition, threads, blocks, gap_ms, json_out, typer.echo)


@bench_app.command("ab")
def bench_ab(
    compare: Compare = typer.Option(..., help="rewrites: the stored ORT copy vs the same copy re-traced without "
                                              "the export rewrites (needs the bundle's source run); executor: "
                                              "sequential executor vs parallel (--threads inter-op, 1 intra-op); "
                                              "executor-both: parallel keeping --threads intra-op too."),
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized MoMKE)."),
    conditions: str = typer.Option("a,at,atv,masked", help="Graphs, comma-separated: patterns (at = audio and "
                                                           "text) or masked."),
    batch: int = typer.Option(1, help="Batch size."),
    seq: int = typer.Option(24, help="MoMKE conversation length (DERL uses its sequence lengths)."),
    threads: int = typer.Option(2, help="ONNX Runtime threads of each session."),
    rounds: int = typer.Option(20, help="Alternating rounds per graph; the figure is the median of the "
                                        "per-round ratios, with their range."),
    seconds: float = typer.Option(10.0, help="Measured seconds per graph and session, all rounds together."),
    json_out: Optional[Path] = typer.Option(None, "--json", help=JSON_HELP),
):
    """Two sessions of the same graph side by side in alternating rounds (base vs new): the median
    over rounds of base/new p50 (> 1: new is faster), its range and both p50s."""
    from anymodal.bench.session_ab import ab_command

    ab_command(compare.value, bundle, conditions, batch, seq, threads, rounds, seconds, json_out, typer.echo)


def bench_main():
    main(bench_app)
