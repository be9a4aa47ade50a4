"""Command-line face of anymodal (`rt-*`). Commands are thin: parse, import lazily, call the API.

Every command's --help works with only the runtime installed; heavy libraries are imported
inside the command that needs them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from anymodal.choices import Backend, BuildPrecision, Int8Mode, Kernels, Layout, NonFinite, OnOff, Split
from anymodal.cli_app import MAIN_JOB, require, subcommand_invoked
from anymodal.cli_app import app as _app
from anymodal.cli_app import console as _console
from anymodal.cli_app import ints as _ints
from anymodal.cli_app import main as _main

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
    print_evaluation(_console(), res, f"{res['dataset']} ({split.value})", f"— {run}")
    if json_out:
        write_json(res, json_out)


def data_main():
    _main(data_app)


def train_main():
    _main(train_app)


def eval_main():
    _main(eval_app)


# --------------------------------------------------------------------------- rt-export
export_app = _app()


@export_app.callback(**MAIN_JOB)
def export_run(
    ctx: typer.Context,
    run: Optional[Path] = typer.Option(None, help="Run folder written by rt-train (required)."),
    out: Optional[Path] = typer.Option(None, help="Bundle folder to write, replaced atomically (required)."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8, or several: fp32,fp16 / fp32,int8 (variants in one bundle)."),
    kernels: Kernels = typer.Option(Kernels.standard, help="fused: RouterMix TensorRT-plugin nodes."),
    max_drop: float = typer.Option(1.0, help="int8: refuse if any condition loses more points on val."),
    int8_mode: Int8Mode = typer.Option(Int8Mode.dynamic, help="int8: dynamic (activations quantised per request) "
                                       "or static (QDQ calibrated on the training split)."),
):
    """Export a trained run to a verified bundle of per-pattern ONNX graphs.

    Without a subcommand: 7 specialised graphs + masked graph, shared weights, parity-checked
    against PyTorch. `rt-export triton` writes a Triton model repository for a bundle."""
    if subcommand_invoked(ctx):
        return
    require(run=run, out=out)
    from anymodal.export.api import export_run_folder

    bundle = export_run_folder(run, out, tuple(p.strip() for p in precision.split(",")), kernels.value, max_drop,
                               int8_mode.value)
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


@export_app.command("triton")
def export_triton(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    out: Path = typer.Option(..., help="Model repository folder (only the model's folders are replaced)."),
    flavor: str = typer.Option("runtime", help="runtime (one Python-backend model) | graphs (a model per "
                                               "graph + a BLS router)."),
    name: str = typer.Option("anymodal", help="Model name in the repository."),
    instances: int = typer.Option(1, help="Model instances (processes) serving in parallel."),
    threads: Optional[int] = typer.Option(None, help="Intra-op threads per instance (default: all cores)."),
    backend: str = typer.Option("auto", help="runtime flavor: Runtime backend inside the server."),
    precision: Optional[str] = typer.Option(None, help="Bundle precision variant (default: its first)."),
    max_batch: int = typer.Option(64, help="Largest batch Triton's dynamic batcher forms."),
    queue_delay_us: int = typer.Option(200, help="Dynamic batching: longest wait for more requests (µs)."),
    link: bool = typer.Option(False, help="Link the bundle into the repository instead of copying it."),
    engines: Optional[str] = typer.Option(None, help="graphs flavor: engines/<NAME> of rt-build -> tensorrt_plan "
                                                     "models instead of ONNX Runtime ones."),
    scheduler: bool = typer.Option(False, "--scheduler", help="Answer each batch through a runtime Scheduler: "
                                                              "requests of one graph join across lengths."),
    streaming: bool = typer.Option(False, "--streaming", help="Also model <name>_stream: live conversations over "
                                                              "Triton's sequence batcher (correlation id = "
                                                              "conversation id)."),
    max_streams: int = typer.Option(64, help="--streaming: conversations held per model instance."),
    idle_timeout_s: float = typer.Option(60.0, help="--streaming: a conversation idle this long is freed."),
    max_context: int = typer.Option(64, help="--streaming: utterances kept per conversation."),
):
    """A Triton Inference Server model repository for a bundle: configs generated from its
    manifest, dynamic batching on (the streaming model: sequence batching)."""
    from anymodal.export.triton_repo import STREAM_SUFFIX, write_triton_repo

    repo = write_triton_repo(bundle, out, flavor, name, instances, threads, backend, precision, max_batch,
                             queue_delay_us, link, engines, scheduler, streaming, max_streams, idle_timeout_s,
                             max_context)
    typer.echo(f"wrote model {name!r} ({flavor} flavor) to the Triton repository {repo}")
    if streaming:
        typer.echo(f"wrote model {name + STREAM_SUFFIX!r} (conversations over the sequence batcher)")


# --------------------------------------------------------------------------- rt-run
run_app = _app()
SPINNING_HELP = ("ONNX Runtime intra-op spinning (CPU): on saves thread wake-ups when the caller owns its "
                 "cores; off (default) when they are shared (docs/performance.md).")
BACKEND_HELP = "Inference backend (auto: the fastest that runs here)."
PRECISION_HELP = "Bundle precision variant (default: its first)."
NONFINITE_HELP = "NaN/Inf in an item: refused, or that item of that modality treated as absent."


@run_app.callback(**MAIN_JOB)
def run_once(
    ctx: typer.Context,
    bundle: Optional[Path] = typer.Option(None, help="Bundle folder (required)."),
    audio: Optional[Path] = typer.Option(None, help=".npy [L, dim] or [B, L, dim] audio features."),
    text: Optional[Path] = typer.Option(None, help=".npy text features."),
    visual: Optional[Path] = typer.Option(None, help=".npy visual features."),
    backend: Backend = typer.Option(Backend("auto"), help=BACKEND_HELP),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP),
    nonfinite: NonFinite = typer.Option(NonFinite.error, help=NONFINITE_HELP),
    spinning: OnOff = typer.Option(OnOff.off, help=SPINNING_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print Prediction.to_dict() as JSON."),
):
    """One prediction from a bundle (torch-free).

    Without a subcommand: one request; absent sensors are simply not given, the graph is chosen
    from those that are. `rt-run stream` follows a conversation turn by turn."""
    if subcommand_invoked(ctx):
        return
    require(bundle=bundle)
    from anymodal.runtime.jsonio import dumps
    from anymodal.runtime.runner import describe, predict_files

    pred = predict_files(bundle, {"a": audio, "t": text, "v": visual}, backend.value, precision,
                         nonfinite.value, spinning=spinning == OnOff.on)
    typer.echo(dumps(pred.to_dict()) if json_out else describe(pred))


@run_app.command("stream")
def run_stream(
    turns: str = typer.Argument(..., metavar="TURNS", help="FILE.jsonl, or - for stdin: one turn per JSON line."),
    bundle: Path = typer.Option(..., help="Bundle folder."),
    backend: Backend = typer.Option(Backend("auto"), help=BACKEND_HELP),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP),
    nonfinite: NonFinite = typer.Option(NonFinite.error, help=NONFINITE_HELP),
    max_context: int = typer.Option(64, help="Utterances the conversation keeps."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Answer a bad line with an error record and "
                                                                "go on (exit status 2 at the end)."),
):
    """Follow a conversation: one JSON prediction per turn, printed as it goes."""
    from anymodal.runtime.runner import stream_turns

    stream_turns(bundle, turns, sys.stdout, backend.value, precision, max_context, nonfinite.value, keep_going)


def export_main():
    _main(export_app)


def run_main():
    _main(run_app)


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
    compare: Optional[str] = typer.Option(None, help="Also score this variant (e.g. fp32) on the same split and "
                                          "print the difference per condition (ONNX Runtime, CPU)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
):
    """The paper's Table-2 layout, computed through the runtime (what is actually served)."""
    from anymodal.bench.accuracy import accuracy_report, delta_line, int8_delta_lines, precision_deltas
    from anymodal.bench.tables import print_evaluation
    from anymodal.runtime.jsonio import write_json

    res = accuracy_report(bundle, data, split.value, backend.value, precision=precision)
    console = _console()
    print_evaluation(console, res, f"{res['dataset']} ({split.value})", f"via {res['backend']} — {bundle}")
    for line in int8_delta_lines(bundle):
        console.print(line, markup=False, highlight=False)
    if compare:
        from anymodal.runtime.bundle import Bundle

        served = Bundle(bundle, precision)
        res["compare"] = precision_deltas(bundle, data, served.task, split.value, compare, served.precision)
        console.print(delta_line(res["compare"]), markup=False, highlight=False)
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
