"""rt-serve, `rt-export triton` and `rt-bench --server` (wired from anymodal/cli.py)."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from anymodal.runtime.errors import AnymodalError


def _app(help: str) -> typer.Typer:
    return typer.Typer(help=help, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def _run(app: typer.Typer, args: list[str], prog: str) -> None:
    """Run an app; anymodal's typed errors become one clear line and exit status 2."""
    try:
        app(args=args, prog_name=prog)
    except AnymodalError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


# --------------------------------------------------------------------------- rt-export triton
export_app = _app("Write a Triton Inference Server model repository for a bundle.")


@export_app.command()
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
):
    """Configs generated from the bundle manifest; dynamic batching on."""
    from anymodal.export.triton_repo import write_triton_repo

    repo = write_triton_repo(bundle, out, flavor, name, instances, threads, backend, precision, max_batch,
                             queue_delay_us, link, engines, scheduler)
    typer.echo(f"wrote model {name!r} ({flavor} flavor) to the Triton repository {repo}")


def export_triton_main() -> None:
    _run(export_app, sys.argv[2:], "rt-export triton")


# --------------------------------------------------------------------------- rt-serve
serve_app = _app("Serve a bundle on NVIDIA Triton Inference Server (HTTP, gRPC, Prometheus metrics).")


@serve_app.command()
def serve(
    bundle: Path = typer.Option(..., help="Bundle folder."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    http_port: int = typer.Option(8000, help="HTTP port."),
    grpc_port: int = typer.Option(8001, help="gRPC port."),
    metrics_port: int = typer.Option(8002, help="Prometheus metrics port."),
    name: str = typer.Option("anymodal", help="Model name."),
    instances: int = typer.Option(1, help="Model instances (processes) serving in parallel."),
    threads: Optional[int] = typer.Option(None, help="Intra-op threads per instance (default: all cores)."),
    backend: str = typer.Option("auto", help="Runtime backend inside the server."),
    timeout_s: float = typer.Option(120.0, help="Longest wait for the server to become ready."),
):
    """Exports the runtime flavor to a temporary repository, starts tritonserver, waits until it is
    ready and prints the endpoints; Ctrl-C or SIGTERM stops it (and its model processes)."""
    from anymodal.export.triton_repo import write_triton_repo
    from anymodal.serve.server import ServeError, TritonServer, server_dist

    server_dist()  # a missing server fails here, before any work, naming the extra to install
    repo = Path(tempfile.mkdtemp(prefix="anymodal-repo-"))
    srv = None
    try:
        write_triton_repo(bundle, repo, "runtime", name, instances, threads, backend, link=True)
        srv = TritonServer(repo, http_port, grpc_port, metrics_port, host=host)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        srv.start(timeout_s)
        e = srv.endpoints
        typer.echo(f"serving {bundle} as model {name!r}\n  http     http://{e.http}/v2/models/{name}/infer\n"
                   f"  grpc     grpc://{e.grpc}\n  metrics  {e.metrics}\n  log      {srv.log_path} (while it runs)\n"
                   "Ctrl-C stops the server.", )
        code = srv.proc.wait()
        raise ServeError(f"tritonserver exited with status {code}:\n{srv.log_tail()}")
    except KeyboardInterrupt:
        typer.echo("stopping tritonserver …")
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(repo, ignore_errors=True)
    typer.echo("stopped")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def serve_main() -> None:
    _run(serve_app, sys.argv[1:], "rt-serve")


# --------------------------------------------------------------------------- rt-bench --server
bench_app = _app("Latency and throughput against a running Triton server, beside the in-process Runtime.")


@bench_app.command()
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
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
    markdown: Optional[Path] = typer.Option(None, help="Write the table as markdown."),
):
    """p50/p90/p99 and requests per second per transport; every answer checked against in-process."""
    from rich.console import Console

    from anymodal.bench.server import bench_server as run
    from anymodal.bench.server import parse_servers, server_rows
    from anymodal.bench.tables import markdown_table, rich_table
    from anymodal.runtime.jsonio import write_json

    console = Console()
    levels = [int(c) for c in concurrency.split(",")]
    result = run(parse_servers(server), bundle, [c for c in condition.split(";") if c], levels, model_name,
                 seq_len, threads, warmup_s, duration_s, progress=lambda s: console.print(f"[dim]{s}[/dim]"))
    header, rows = server_rows(result)
    m = result["machine"]
    console.print(rich_table(f"rt-bench --server — {result['model_kind']} — {m['cpu']} ({m['cores']} cores)",
                             header, rows))
    if json_out:
        write_json(result, json_out)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(markdown_table(header, rows) + f"\n\nmachine: {m['cpu']} ({m['cores']} cores), "
                            f"{m['timestamp']}\n")


def bench_server_main() -> None:
    _run(bench_app, [a for a in sys.argv[1:]], "rt-bench")
