"""`make demo`: the whole pipeline on embedded synthetic data, with progress.

synthetic IEMOCAP-like data -> MoMKE (all-patterns protocol) -> export + verify ->
accuracy per condition through the runtime -> rt-bench --condition a,v ->
OUT/report.md and OUT/latency.png.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from anymodal import cli_app

# Demo-sized model and schedule: converges on the synthetic data in about a minute on 2 cores.
DEMO_MODEL = dict(hidden=64, depth=2, heads=2, dropout=0.3)
DEMO_EPOCHS = dict(epochs_stage1=15, epochs_stage2=15, lr=1e-3)
STEPS = 5

demo_app = cli_app.app(no_args_is_help=False)


@demo_app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Folder for the data, run, bundle and report."),
    conversations: int = typer.Option(300, help="Synthetic IEMOCAP-like conversations."),
    bench_seconds: float = typer.Option(5.0, help="rt-bench: measured seconds per condition."),
) -> None:
    """The whole pipeline on embedded synthetic data, with progress: synthetic IEMOCAP-like data ->
    MoMKE -> export + verify -> accuracy per condition through the runtime -> rt-bench --condition
    a,v -> OUT/report.md and OUT/latency.png."""
    from anymodal.bench.accuracy import accuracy_report
    from anymodal.bench.report import markdown_report, plot_latency, print_result
    from anymodal.bench.run import run_bench
    from anymodal.bench.tables import condition_rows, markdown_table, rich_table
    from anymodal.export.api import export_run_folder
    from anymodal.runtime.jsonio import write_json
    from anymodal.train.api import evaluate_run
    from anymodal.train.data.synth import SynthConfig, generate
    from anymodal.train.families.momke import train_momke_run
    from anymodal.train.momke_trainer import TrainConfig

    console, t0 = Console(), time.time()
    out.mkdir(parents=True, exist_ok=True)

    def step(i, title):
        console.rule(f"[bold]{i}/{STEPS} {title}[/bold]  [dim]{time.time() - t0:.0f} s[/dim]")

    step(1, "synthetic data")
    data = generate(SynthConfig(task="emotion4", conversations=conversations), out / "data")
    console.print(f"{conversations} IEMOCAP-like conversations in {data}")

    step(2, "train MoMKE (all-patterns protocol)")
    run = train_momke_run(data, "iemocap4", out / "run", model_overrides=DEMO_MODEL,
                          train_cfg=TrainConfig(**DEMO_EPOCHS))
    torch_table = evaluate_run(run)["conditions"]

    step(3, "export 7 specialised graphs + masked graph, verified against PyTorch")
    bundle = export_run_folder(run, out / "bundle", ("fp32", "fp16"))
    console.print(f"bundle: {bundle}")

    step(4, "accuracy per condition through the runtime (held-out session)")
    acc = accuracy_report(bundle, data)
    write_json(acc, out / "accuracy.json")
    header, rows = condition_rows(acc["conditions"])
    console.print(rich_table(f"MoMKE on synthetic IEMOCAP-4, served by {acc['backend']}", header, rows))
    worst = max(abs(acc["conditions"][p][k] - torch_table[p][k]) for p in torch_table for k in torch_table[p])
    console.print(f"largest difference to the PyTorch evaluation: {100 * worst:.2f} points")

    step(5, "rt-bench --condition a,v")
    bench = run_bench(["a,v"], bundle, run, duration_s=bench_seconds,
                      progress=lambda s: console.print(f"[dim]{s}[/dim]"))
    write_json(bench, out / "bench.json")
    print_result(bench, console)
    plot_latency(bench, out / "latency.png")

    report = ["# anymodal demo report", "",
              "MoMKE trained once (all-patterns protocol) on synthetic IEMOCAP-like data, exported "
              "to per-pattern ONNX graphs and evaluated through the runtime on the held-out session.",
              "", "## Accuracy per condition", "", markdown_table(header, rows), "",
              f"Largest difference to the PyTorch evaluation of the same run: {100 * worst:.2f} points.",
              "", markdown_report(bench), "![latency](latency.png)", "",
              f"Total time: {time.time() - t0:.0f} s."]
    (out / "report.md").write_text("\n".join(report) + "\n")
    console.print(f"report: {out / 'report.md'}, plot: {out / 'latency.png'}  ({time.time() - t0:.0f} s)")


def main() -> None:
    cli_app.main(demo_app)


if __name__ == "__main__":
    main()
