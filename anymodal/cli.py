"""Command-line face of anymodal (`rt-*`). Commands are thin: parse, import lazily, call the API.

Every command's --help works with only the runtime installed; heavy libraries are imported
inside the command that needs them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from anymodal.choices import CONDITIONS, Backend, BuildPrecision, Kernels, Layout, NonFinite, OnOff, Split
from anymodal.runtime.errors import AnymodalError


def _app(help: str) -> typer.Typer:
    return typer.Typer(help=help, add_completion=False, no_args_is_help=True,
                       pretty_exceptions_enable=False)


def _main(app: typer.Typer) -> None:
    """Run an app; anymodal's typed errors become one clear line and exit status 2."""
    try:
        app()
    except AnymodalError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


def _console():
    from rich.console import Console

    return Console()


# --------------------------------------------------------------------------- rt-data
data_app = _app("Generate datasets (synthetic data in the benchmark layouts).")


@data_app.callback()
def _data():
    """Datasets."""


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., help="Folder to write the dataset into."),
    layout: Layout = typer.Option(Layout.gcnet, help="gcnet (MoMKE's IEMOCAP/MOSI/MOSEI) or mmsa (DERL's MOSI/MOSEI)."),
    task: str = typer.Option("emotion4", help="gcnet: emotion4 | emotion6 | sentiment (mmsa: sentiment)."),
    conversations: int = typer.Option(150, help="gcnet: number of conversations (dialogues / videos)."),
    samples: int = typer.Option(600, help="mmsa: number of samples (60/15/25 train/valid/test)."),
    dims: Optional[str] = typer.Option(None, help="gcnet: dims audio,text,visual (default 64,96,48); "
                                                  "mmsa: LENxDIM each (default 375x5,50x768,500x20)."),
    seed: int = typer.Option(0, help="Random seed."),
):
    """Write synthetic data with a latent emotion/sentiment that every modality sees."""
    from anymodal.train.api import synth_data

    typer.echo(synth_data(layout.value, out, task, conversations, samples, dims, seed))


# --------------------------------------------------------------------------- rt-train
train_app = _app("Train a model on a dataset folder and write a run folder.")


@train_app.callback()
def _train():
    """Training."""


def _register_family_commands() -> None:
    """`rt-train <family>` for every registered training family (each brings its own options)."""
    from anymodal.train.families import get_train_family, train_family_names

    for name in train_family_names():
        command = get_train_family(name).train_command
        if command is not None:
            train_app.command(name)(command)


_register_family_commands()


# --------------------------------------------------------------------------- rt-eval
eval_app = _app("Evaluate a run under the 7 availability conditions (paper Table 2).")


@eval_app.command()
def eval_run(
    run: Path = typer.Option(..., help="Run folder written by rt-train."),
    data: Optional[Path] = typer.Option(None, help="Dataset folder (default: the one trained on)."),
    split: Split = typer.Option(Split.test, help="Split to evaluate."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
):
    """Print WA/UA/F1 (emotion) or Acc-2/F1/MAE/Corr (sentiment) for a t v at av tv atv."""
    from anymodal.bench.tables import print_evaluation
    from anymodal.runtime.jsonio import write_json
    from anymodal.train.api import evaluate_run

    res = evaluate_run(run, data, split.value)
    print_evaluation(_console(), res, f"{res['dataset']} ({split})", f"— {run}")
    if json_out:
        write_json(res, json_out)


def data_main():
    _main(data_app)


def train_main():
    _main(train_app)


def eval_main():
    _main(eval_app)


# --------------------------------------------------------------------------- rt-export
export_app = _app("Export a trained run to a verified bundle of per-pattern ONNX graphs.")


@export_app.command()
def export_run(
    run: Path = typer.Option(..., help="Run folder written by rt-train."),
    out: Path = typer.Option(..., help="Bundle folder to write (replaced atomically)."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8, or several: fp32,fp16 / fp32,int8 (variants in one bundle)."),
    kernels: Kernels = typer.Option(Kernels.standard, help="fused: RouterMix TensorRT-plugin nodes."),
    max_drop: float = typer.Option(1.0, help="int8: refuse if any condition loses more points on val."),
):
    """7 specialised graphs + masked graph, shared weights, parity-checked against PyTorch."""
    from anymodal.export.api import export_run_folder

    bundle = export_run_folder(run, out, tuple(p.strip() for p in precision.split(",")), kernels.value, max_drop)
    _print_bundle_summary(bundle)


def _print_bundle_summary(bundle: Path) -> None:
    from anymodal.runtime.bundle import Bundle

    b = Bundle(bundle)
    mf = b.manifest
    for prec, results in mf["parity"].items():
        worst = max(r["max_error"] for r in results.values())
        typer.echo(f"{prec}: {len(results)} graphs verified against PyTorch, worst error {worst:.2e}")
    typer.echo(f"bundle: {bundle} ({b.nbytes() / 1e6:.2f} MB, "
               f"{mf['params']['served'] / 1e6:.2f} M served parameters)")


# --------------------------------------------------------------------------- rt-run
run_app = _app("One prediction from a bundle (torch-free).")
SPINNING_HELP = ("ONNX Runtime intra-op spinning (CPU): on saves thread wake-ups when the caller owns its "
                 "cores; off (default) when they are shared (README, Performance).")


@run_app.command()
def run_once(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    audio: Optional[Path] = typer.Option(None, help=".npy [L, dim] or [B, L, dim] audio features."),
    text: Optional[Path] = typer.Option(None, help=".npy text features."),
    visual: Optional[Path] = typer.Option(None, help=".npy visual features."),
    backend: Backend = typer.Option(Backend("auto"), help="Inference backend (auto: the fastest that runs here)."),
    precision: Optional[str] = typer.Option(None, help="Bundle precision variant (default: its first)."),
    nonfinite: NonFinite = typer.Option(NonFinite.error, help="NaN/Inf in an item: refused, or that item of "
                                                             "that modality treated as absent."),
    spinning: OnOff = typer.Option(OnOff.off, help=SPINNING_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print Prediction.to_dict() as JSON."),
    stream: Optional[str] = typer.Option(None, "--stream", metavar="FILE.jsonl|-",
                                         help="Follow a conversation: one turn per JSONL line ('-' = stdin), "
                                              "one JSON prediction per line as it goes (README: Streaming tools)."),
    max_context: int = typer.Option(64, help="--stream: utterances the conversation keeps."),
    keep_going: bool = typer.Option(False, "--keep-going", help="--stream: answer a bad line with an error "
                                                                "record and go on (exit status 2 at the end)."),
):
    """Absent sensors are simply not given; the graph is chosen from those that are."""
    from anymodal.runtime.errors import InputError
    from anymodal.runtime.jsonio import dumps
    from anymodal.runtime.runner import describe, predict_files, stream_turns

    if stream is not None:
        if any(x is not None for x in (audio, text, visual)) or json_out:
            raise InputError("--stream takes its features from the turns file: no --audio/--text/--visual/--json")
        stream_turns(bundle, stream, sys.stdout, backend.value, precision, max_context, nonfinite.value, keep_going)
        return
    if max_context != 64 or keep_going:
        raise InputError("--max-context and --keep-going need --stream")

    pred = predict_files(bundle, {"a": audio, "t": text, "v": visual}, backend.value, precision,
                         nonfinite.value, spinning=spinning == OnOff.on)
    typer.echo(dumps(pred.to_dict()) if json_out else describe(pred))


def export_main():
    if sys.argv[1:2] == ["triton"]:  # rt-export triton: a Triton model repository (anymodal.serve.cli)
        from anymodal.serve.cli import export_triton_main

        return export_triton_main()
    _main(export_app)


def run_main():
    _main(run_app)


# --------------------------------------------------------------------------- rt-bench
bench_app = _app("Latency, throughput, efficiency and parameters per availability condition.")


def _ints(spec: str, option: str) -> tuple[int, ...]:
    from anymodal.runtime.errors import InputError

    try:
        values = tuple(int(x) for x in spec.split(","))
    except ValueError:
        raise InputError(f"{option} takes integers like 1,8 — got {spec!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{option} values must be >= 1, got {spec!r}")
    return values


@bench_app.command()
def bench(
    condition: Optional[str] = typer.Option(None, help=f"Pattern to serve: {CONDITIONS} (or a,v; or use "
                                                       "--all-conditions)."),
    all_conditions: bool = typer.Option(False, "--all-conditions", help="All 7 conditions in one table."),
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (default: built-in paper-sized --model)."),
    model: Optional[str] = typer.Option(None, help="Model family of the default bundle (a registered family; "
                                                   "default: the first)."),
    run: Optional[Path] = typer.Option(None, help="Run folder for the PyTorch reference of --bundle."),
    backend: str = typer.Option("all", help="Variants, comma-separated (reference-eager, reference-compiled, "
                                            "reference-int8, torch, ort-masked, ort, ort-int8, runtime, …) or all."),
    batch: Optional[str] = typer.Option(None, help="Batch sizes, e.g. 1,8 (default sweep: B1×L24 and B16×L50)."),
    seq_len: Optional[str] = typer.Option(None, help="MoMKE conversation lengths, e.g. 24 (default) or 12,48; "
                                                     "DERL uses its sequence lengths."),
    threads: Optional[int] = typer.Option(None, help="Intra-op threads for every variant (default: all cores)."),
    warmup_s: float = typer.Option(1.0, help="Warm-up seconds per condition."),
    duration_s: float = typer.Option(3.0, help="Measured seconds per condition."),
    spinning: OnOff = typer.Option(OnOff.off, help="Intra-op spinning of the runtime and session-run rows "
                                                    "(the ort / ort-spin rows always show off / on)."),
    in_process: bool = typer.Option(False, "--in-process", help="All variants in this one process, interleaved "
                                    "call by call (default: each variant in a process of its own; PyTorch's "
                                    "and ORT's thread pools side by side slow each other)."),
    rounds: int = typer.Option(10, help="Alternating rounds per condition; the figure is the median of the "
                                        "rounds' medians, with their range."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
    markdown: Optional[Path] = typer.Option(None, help="Write a markdown report."),
    plot: Optional[Path] = typer.Option(None, help="Write a PNG latency plot (--stream: per-turn latency; "
                                                   "default beside --json)."),
    stream: bool = typer.Option(False, "--stream", help="A live conversation turn by turn: streaming "
                                                        "(Conversation.add) vs re-scoring the window."),
    turns: int = typer.Option(200, help="--stream: turns in the conversation."),
    max_context: Optional[int] = typer.Option(None, help="--stream: Conversation max_context (default: --turns)."),
    drop: Optional[str] = typer.Option(None, help="--stream: sensors absent per turn range, e.g. v@5-12,a@20-22 "
                                                  "(1-based, inclusive)."),
    repeats: int = typer.Option(3, help="--stream: timed passes over the conversation."),
    streams: Optional[str] = typer.Option(None, "--streams", metavar="N[,N…]",
                                          help="N live conversations at once, as fast as possible: the "
                                               "Scheduler vs one turn at a time (--turns per stream, default "
                                               "50; --max-context default 64)."),
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="DIR",
                                           help="Instead of the latency comparison: ORT's per-op profile of "
                                                "each served graph (op type, nodes, µs, share), its MFLOP, "
                                                "GFLOP/s and % of a measured matmul peak, written to DIR."),
):
    """Compare the authors' computation in PyTorch (eager, compiled, int8), ORT masked, ORT specialised
    (and GPU backends), each in a process of its own, in alternating rounds.
    With --stream: per-turn latency of a live conversation (--condition = its sensors, default a,t,v)."""
    from anymodal.runtime.errors import InputError

    if streams is not None:
        given = {"--stream": stream, "--condition": condition is not None, "--all-conditions": all_conditions,
                 "--model": model is not None, "--run": run is not None, "--backend": backend != "all",
                 "--batch": batch is not None, "--seq-len": seq_len is not None, "--warmup-s": warmup_s != 1.0,
                 "--duration-s": duration_s != 3.0, "--drop": drop is not None, "--repeats": repeats != 3,
                 "--plot": plot is not None}
        if any(given.values()):
            raise InputError(f"{next(k for k, v in given.items() if v)} does not apply to --streams")
        from anymodal.bench.streams import bench_streams_command

        return bench_streams_command(tuple(_ints(streams, "--streams")), bundle, threads,
                                     turns if turns != 200 else 50, max_context or 64, json_out, markdown,
                                     _console())
    stream_only = {"--turns": turns != 200, "--max-context": max_context is not None, "--drop": drop is not None,
                   "--repeats": repeats != 3}
    if stream:
        given = {"--all-conditions": all_conditions, "--model": model is not None, "--run": run is not None,
                 "--backend": backend != "all", "--batch": batch is not None, "--seq-len": seq_len is not None,
                 "--warmup-s": warmup_s != 1.0, "--duration-s": duration_s != 3.0, "--in-process": in_process,
                 "--rounds": rounds != 10}
        if any(given.values()):
            raise InputError(f"{next(k for k, v in given.items() if v)} does not apply to --stream")
        from anymodal.bench.stream import bench_stream_command

        return bench_stream_command(condition, bundle, threads, turns, max_context, drop, repeats, json_out,
                                    markdown, plot, _console())
    if any(stream_only.values()):
        raise InputError(f"{next(k for k, v in stream_only.items() if v)} needs --stream")
    if all_conditions == (condition is not None):
        raise InputError("give exactly one of --condition PATTERN or --all-conditions")
    if profile is not None:
        given = {"--run": run is not None, "--backend": backend != "all", "--in-process": in_process,
                 "--rounds": rounds != 10, "--warmup-s": warmup_s != 1.0, "--duration-s": duration_s != 3.0,
                 "--json": json_out is not None, "--markdown": markdown is not None, "--plot": plot is not None}
        if any(given.values()):
            raise InputError(f"{next(k for k, v in given.items() if v)} does not apply to --profile")
        from anymodal.bench.profile_cli import bench_profile_command
        from anymodal.bench.run import DEFAULT_SHAPES

        return bench_profile_command("all" if all_conditions else [condition], bundle, model,
                                     _ints(batch, "--batch") if batch else (1,),
                                     _ints(seq_len, "--seq-len") if seq_len else None,
                                     DEFAULT_SHAPES if batch is None and seq_len is None else None,
                                     threads, spinning == OnOff.on, profile, _console())
    from anymodal.bench.report import markdown_report, plot_latency, print_result, write_outputs
    from anymodal.bench.run import DEFAULT_SHAPES, run_bench

    console = _console()
    result = run_bench("all" if all_conditions else [condition], bundle, run, backend,
                       _ints(batch, "--batch") if batch else (1,), _ints(seq_len, "--seq-len") if seq_len else None,
                       threads, warmup_s, duration_s, progress=lambda s: console.print(f"[dim]{s}[/dim]"), model=model,
                       shapes=DEFAULT_SHAPES if batch is None and seq_len is None else None,
                       spinning=spinning == OnOff.on, in_process=in_process, rounds=rounds)
    print_result(result, console)
    write_outputs(result, json_out, markdown, markdown_report, plot, plot_latency)


def bench_main():
    if any(a == "--server" or a.startswith("--server=") for a in sys.argv[1:]):  # against a Triton server
        from anymodal.serve.cli import bench_server_main

        return bench_server_main()
    _main(bench_app)


# --------------------------------------------------------------------------- rt-report
report_app = _app("Reports from a bundle: accuracy per condition, parameter efficiency.")


@report_app.callback()
def _report():
    """Reports."""


@report_app.command("accuracy")
def report_accuracy(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    data: Path = typer.Option(..., help="Dataset the model was trained on (GCNet folder or MMSA pickle)."),
    split: Split = typer.Option(Split.test, help="Recorded split to score."),
    backend: Backend = typer.Option(Backend("auto"), help="Runtime backend."),
    precision: Optional[str] = typer.Option(None, help="Bundle precision variant (default: its first)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
):
    """The paper's Table-2 layout, computed through the runtime (what is actually served)."""
    from anymodal.bench.accuracy import accuracy_report, int8_delta_lines
    from anymodal.bench.tables import print_evaluation
    from anymodal.runtime.jsonio import write_json

    res = accuracy_report(bundle, data, split.value, backend.value, precision=precision)
    console = _console()
    print_evaluation(console, res, f"{res['dataset']} ({split})", f"via {res['backend']} — {bundle}")
    for line in int8_delta_lines(bundle):
        console.print(line, markup=False, highlight=False)
    if json_out:
        write_json(res, json_out)


@report_app.command("params")
def report_params(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
):
    """Total, per component, active per pattern, bytes per precision."""
    from anymodal.bench.params import params_report, params_rows
    from anymodal.bench.tables import rich_table
    from anymodal.runtime.jsonio import write_json

    rep = params_report(bundle)
    header, rows = params_rows(rep)
    _console().print(rich_table(f"parameters — {rep['model']} — {bundle}", header, rows))
    if json_out:
        write_json(rep, json_out)


@report_app.command("footprint")
def report_footprint(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
):
    """Bytes on disk per precision, import time, RSS after loading every graph and after one
    request per pattern (each precision measured in a fresh process)."""
    from anymodal.bench.footprint import footprint, footprint_table
    from anymodal.runtime.jsonio import write_json

    rep = footprint(bundle, threads)
    _console().print(footprint_table(rep))
    if json_out:
        write_json(rep, json_out)


def report_main():
    _main(report_app)


# --------------------------------------------------------------------------- rt-kernels
kernels_app = _app("Fused router / expert-mixing kernels: ahead-of-time compilation.")


@kernels_app.callback()
def _kernels():
    """Kernels."""


@kernels_app.command("aot")
def kernels_aot(
    out: Path = typer.Option(..., help="Folder for the PTX, cubin and launch metadata."),
    arch: str = typer.Option("72,87,90", help="Compute capabilities: 72 (Xavier), 87 (Orin), 90 (Hopper), 100/120 "
                             "(Blackwell), 110 (Thor); others are refused."),
    dtype: str = typer.Option("fp32,fp16", help="Element types to compile."),
    hidden: int = typer.Option(256, help="Router/expert width d the kernel is specialised for."),
):
    """Compile RouterMix for the given GPUs; no GPU needed on this machine."""
    from anymodal.kernels.aot import compile_aot

    index = compile_aot(_ints(arch, "--arch"), out, tuple(d.strip() for d in dtype.split(",")), hidden)
    for k in index["kernels"]:
        typer.echo(f"{k['arch']} {k['dtype']} d={k['hidden']}: {out / k['stem']}.{{ptx,cubin,json}}")


def kernels_main():
    _main(kernels_app)


# --------------------------------------------------------------------------- rt-build
build_app = _app("Build TensorRT engines for a bundle on this GPU (Jetson or discrete).")


@build_app.command()
def build(
    bundle: Path = typer.Option(..., help="Bundle folder (fused or standard graphs)."),
    precision: BuildPrecision = typer.Option(BuildPrecision.fp16, help="Engine precision."),
    calib_data: Optional[Path] = typer.Option(None, help="The dataset folder the model was trained on "
                                              "(default: the one its run recorded): INT8 calibration "
                                              "and the parity check use its training split."),
    workspace_mb: int = typer.Option(1024, help="Builder workspace limit in MiB."),
    max_batch: int = typer.Option(16, help="Largest batch of the optimisation profile."),
    max_seq: int = typer.Option(256, help="Longest conversation of the optimisation profile."),
):
    """One engine per graph under engines/<sm>-trt<version>-<precision>/, with a timing cache."""
    from anymodal.export.trt_build import ProfileLimits, build_engines

    out = build_engines(bundle, precision.value, workspace_mb, calib_data,
                        ProfileLimits(max_batch=max_batch, max_seq=max_seq))
    typer.echo(f"engines written to {out}")


def build_main():
    _main(build_app)
