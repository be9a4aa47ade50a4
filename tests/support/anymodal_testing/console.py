"""Console scripts run in this process: a pipeline of rt-* commands without a Python start and a
torch import per step (1-2 s each on 2 cores). The argv handling, exit status, stdout and stderr are
the user's; what a separate process adds (the installed script itself, a clean interpreter) is
checked by the tests that still run the scripts as processes (tests/test_cli.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@cache
def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml: rt-* name -> "module:function"."""
    import tomllib  # Python 3.11+, like the tests that run commands

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def run_entry(prog: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Call `prog`'s console-script entry point with argv = [prog, *args]."""
    from typer.testing import CliRunner

    module, func = console_scripts()[prog].split(":")
    main = getattr(importlib.import_module(module), func)
    saved = sys.argv
    with CliRunner().isolation(env=env) as (out, err, *_):
        sys.argv = [prog, *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
            sys.stdout.flush()  # argparse (rt-demo) writes without flushing
            sys.stderr.flush()
        stdout, stderr = (s.getvalue().decode("utf-8", "replace") for s in (out, err))
    return subprocess.CompletedProcess([prog, *args], code, stdout, stderr)


def run_console(prog: str, *args: str) -> subprocess.CompletedProcess:
    return run_entry(prog, [str(a) for a in args])
