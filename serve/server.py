"""Running a real `tritonserver` on a model repository: start, wait ready, stop with no orphans.

The server binary comes from the `serve` extra (the nvidia-pytriton wheel ships a complete
tritonserver with the Python backend). The Python backend needs the stub built for the running
Python: it is copied beside a link to the backend library in a private backend folder, and the
stub finds this environment (anymodal, numpy, onnxruntime) through PATH, as pytriton does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from anymodal.runtime.errors import AnymodalError

LOOPBACK = "127.0.0.1"


class ServeError(AnymodalError):
    """The Triton server is missing, failed to start or to become ready (the message says why)."""


def server_dist() -> Path:
    """The folder holding bin/tritonserver and backends/ from the `serve` extra."""
    spec = importlib.util.find_spec("pytriton")  # located, not imported: only its binary is used
    if spec is None or not spec.submodule_search_locations:
        raise ServeError("the Triton server is not installed: pip install 'anymodal[serve]' "
                         "(it brings the nvidia-pytriton wheel with a tritonserver binary)")
    dist = Path(spec.submodule_search_locations[0]) / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise ServeError(f"{dist / 'bin' / 'tritonserver'}: missing — reinstall 'anymodal[serve]'")
    return dist


def prepare_backends(dest: Path) -> Path:
    """A backend folder whose python backend has the stub for this Python (returns `dest`)."""
    dist = server_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (dist / "python_backend_stubs").iterdir())
        raise ServeError(f"no Triton Python backend stub for Python {version} (the wheel has {', '.join(have)})")
    for backend in (dist / "backends").iterdir():
        target = dest / backend.name
        target.mkdir(parents=True, exist_ok=True)
        for f in backend.iterdir():
            if f.is_file():
                (target / f.name).symlink_to(f)
    shutil.copy2(stub, dest / "python" / "triton_python_backend_stub")
    return dest


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def http(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"


class TritonServer:
    """`with TritonServer(repo) as srv:` — a tritonserver on loopback, stopped on exit."""

    def __init__(self, repo: str | Path, http_port: int | None = None, grpc_port: int | None = None,
                 metrics_port: int | None = None, host: str = LOOPBACK, log: Path | None = None,
                 env: dict[str, str] | None = None):
        self.repo = Path(repo).resolve()
        self.env = dict(env or {})  # added to this process's environment (e.g. ANYMODAL_FAMILIES)
        ports = [p or free_port(host) for p in (http_port, grpc_port, metrics_port)]
        self.endpoints = Endpoints(host, *ports)
        self._work = Path(tempfile.mkdtemp(prefix="anymodal-triton-"))
        self.log_path = log or self._work / "tritonserver.log"  # errors carry its tail
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        e = self.endpoints
        return [str(server_dist() / "bin" / "tritonserver"), f"--model-repository={self.repo}",
                f"--backend-directory={self._work / 'backends'}",
                f"--http-address={e.host}", f"--http-port={e.http_port}",
                f"--grpc-address={e.host}", f"--grpc-port={e.grpc_port}",
                f"--metrics-address={e.host}", f"--metrics-port={e.metrics_port}",
                "--allow-gpu-metrics=false", "--exit-timeout-secs=5", "--disable-auto-complete-config"]

    def start(self, timeout_s: float = 60.0) -> TritonServer:
        prepare_backends(self._work / "backends")
        env = {**os.environ, **self.env}  # the stubs inherit it: $ANYMODAL_FAMILIES reaches them
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the stub's Python
        libs = str(server_dist().parent.parent / "nvidia_pytriton.libs")  # the stub's own libraries
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH"), libs) if p)
        with open(self.log_path, "wb") as log:
            # own process group: the Python-backend stubs are the server's children and go with it.
            # cwd: the stubs' embedded Python puts its working directory on sys.path, so started
            # from a checkout of anymodal it would import ./anymodal, not the installed package
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, cwd=self._work)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoints.http}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServeError(f"tritonserver exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise ServeError(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after `timeout_s`."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)  # stubs that outlived the server
            self.proc.wait()
        shutil.rmtree(self._work, ignore_errors=True)  # the backend copy and (unless asked to keep it) the log

    def __enter__(self) -> TritonServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
