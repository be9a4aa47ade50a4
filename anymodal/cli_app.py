"""What every `rt-*` command shares: how its Typer app is made, how it runs (typed errors become
one line and exit status 2), and how a tool's main job and its other modes (subcommands) share
one app. Torch-free and light: every command's --help imports only this, typer and the runtime's
errors.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from anymodal.runtime.errors import AnymodalError, InputError


def app(help: Optional[str] = None, no_args_is_help: bool = True) -> typer.Typer:
    """A tool's app (bare: its help, unless the tool runs without arguments). Where the main job is
    the app's callback, the callback's docstring is the help."""
    given = {"help": help} if help is not None else {}  # an explicit None would hide the docstring
    return typer.Typer(**given, add_completion=False, no_args_is_help=no_args_is_help,
                       pretty_exceptions_enable=False)


def main(tool: typer.Typer, args: Optional[list[str]] = None, prog_name: Optional[str] = None) -> None:
    """Run a tool; anymodal's typed errors become `error: <Type>: <message>` and exit status 2."""
    try:
        tool(args=args, prog_name=prog_name)
    except AnymodalError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


# @tool.callback(**MAIN_JOB): the callback is the tool's main job, run when no subcommand is given
MAIN_JOB = {"invoke_without_command": True, "subcommand_metavar": "[COMMAND [ARGS]...]"}


def subcommand_invoked(ctx: typer.Context) -> bool:
    """In a main job's callback: True when a subcommand (another mode) runs instead. The main
    job's options do not carry over to a subcommand, so one given with it is refused by name
    (`rt-bench --bundle B stream` -> give --bundle after `stream`)."""
    sub = ctx.invoked_subcommand
    if sub is None:
        return False
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            tool = ctx.info_name or "the command"
            raise InputError(f"{param.opts[0]} is an option of `{tool}` itself, not of `{tool} {sub}`: "
                             f"give the options after `{sub}` (`{tool} {sub} --help` lists them)")
    return True


def require(**options) -> None:
    """The main job's required options (optional to click, so that a subcommand runs without
    them): require(run=run, out=out) refuses the first one missing, by its flag."""
    for name, value in options.items():
        if value is None:
            raise InputError(f"missing option --{name.replace('_', '-')}")


def ints(spec: str, option: str) -> tuple[int, ...]:
    """'1,8' -> (1, 8); anything else is refused naming the option."""
    try:
        values = tuple(int(x) for x in spec.split(","))
    except ValueError:
        raise InputError(f"{option} takes integers like 1,8 — got {spec!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{option} values must be >= 1, got {spec!r}")
    return values


def console():
    from rich.console import Console

    return Console()
