"""`rt-serve`: a bundle on Triton Inference Server. (The repository export is `rt-export triton`
in anymodal/cli.py; the client-side benchmark `rt-bench server` is in anymodal/bench_cli.py.)"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from typing import Optional

import typer

from anymodal.cli_app import app, main

serve_app = app("Serve a bundle on NVIDIA Triton Inference Server (HTTP, gRPC, Prometheus metrics).")


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
    main(serve_app)
