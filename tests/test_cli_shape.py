"""One CLI shape: every rt-* console script (pyproject [project.scripts]) runs a Typer app through
anymodal.cli_app.main, so a typed error reads the same everywhere; every mode is a subcommand that
--help lists; a tool's own options given with a subcommand are refused by name. In-process
(CliRunner): the apps are only parsed, nothing is measured."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from anymodal.cli_app import main
from anymodal.runtime.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the py310 checks do not run the CLI tests
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

# the agreed shape: each tool's modes besides its main job
MODES = {
    "rt-data": {"synth"},
    "rt-train": {"momke", "derl"},
    "rt-export": {"triton"},
    "rt-run": {"stream"},
    "rt-bench": {"profile", "stream", "streams", "server", "overhead", "spinning", "ab"},
    "rt-report": {"accuracy", "params", "footprint"},
    "rt-kernels": {"aot"},
}
# tools whose bare name runs a main job of top-level options (beside any subcommands)
MAIN_JOBS = {"rt-eval", "rt-export", "rt-run", "rt-bench", "rt-build", "rt-doctor", "rt-serve", "rt-demo"}


def _run_probed(script: str, mp: pytest.MonkeyPatch) -> tuple[typer.Typer, int]:
    """Run a script's entry point with Typer's __call__ replaced by one that records the app and
    raises a typed error: (the app, the exit status)."""
    module, func = SCRIPTS[script].split(":")
    seen = []

    def probe(self, *args, **kwargs):
        seen.append(self)
        raise InputError("probe message")

    mp.setattr(typer.Typer, "__call__", probe)
    mp.setattr(sys, "argv", [script])
    with pytest.raises(SystemExit) as exit_info:
        getattr(importlib.import_module(module), func)()
    return seen[0], exit_info.value.code


@pytest.fixture(scope="module")
def apps() -> dict[str, typer.Typer]:
    """{script: the Typer app its entry point runs}."""
    with pytest.MonkeyPatch.context() as mp:
        return {script: _run_probed(script, mp)[0] for script in SCRIPTS}


def test_every_console_script_prints_typed_errors_the_same_way(capsys, monkeypatch):
    for script in SCRIPTS:
        app, status = _run_probed(script, monkeypatch)
        assert isinstance(app, typer.Typer) and status == 2, script
        assert capsys.readouterr().err == "error: InputError: probe message\n", script


def _help(app: typer.Typer, *args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"}, prog_name="rt")
    assert res.exit_code == 0, (args, res.output)
    return res.output


def _listed(text: str) -> set[str]:
    """The names in --help's Commands panel (rich: `│ name  summary`, continuation lines indented)."""
    panel = text.split("Commands ─", 1)[1] if "Commands ─" in text else ""
    return {line.split()[1] for line in panel.splitlines() if line.startswith("│ ") and line[2] != " "}


def test_help_of_every_script_and_subcommand_lists_every_mode(apps):
    for script, app in apps.items():
        command = typer.main.get_command(app)
        subs = set(getattr(command, "commands", {}))  # a group (typer's own click) lists them
        assert MODES.get(script, set()) <= subs, script
        text = _help(app)
        assert _listed(text) == subs, script  # none hidden
        for sub in subs:
            assert "Usage: rt " + sub in _help(app, sub)
        if script in MAIN_JOBS and subs:  # the main job runs without a subcommand
            assert "[COMMAND [ARGS]...]" in text, script


@pytest.mark.parametrize("script,args,option", [
    ("rt-bench", ["--bundle", "B", "stream"], "--bundle"),
    ("rt-bench", ["--threads", "2", "overhead"], "--threads"),
    ("rt-export", ["--run", "R", "triton", "--bundle", "B", "--out", "O"], "--run"),
    ("rt-run", ["--json", "stream", "--bundle", "B", "-"], "--json"),
])
def test_top_level_options_with_a_subcommand_are_refused_by_name(apps, capsys, script, args, option):
    with pytest.raises(SystemExit) as exit_info:
        main(apps[script], args, script)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: InputError: {option} is an option of `{script}` itself"), err


@pytest.mark.parametrize("script,args,missing", [
    ("rt-export", ["--run", "R"], "--out"),
    ("rt-run", ["--audio", "a.npy"], "--bundle"),
])
def test_main_job_names_its_missing_option(apps, capsys, script, args, missing):
    with pytest.raises(SystemExit):
        main(apps[script], args, script)
    assert capsys.readouterr().err == f"error: InputError: missing option {missing}\n"
