"""`rt-doctor` command line (the work is in anymodal.doctor and anymodal.selftest)."""

from __future__ import annotations

import json
import sys

import typer

from anymodal import cli_app

app = cli_app.app("What this machine can run: versions, devices, backends.", no_args_is_help=False)


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the report (and self-test) as JSON."),
    selftest: bool = typer.Option(False, "--selftest", help="Run every GPU check whose libraries are present."),
    require_gpu: bool = typer.Option(False, "--require-gpu", help="Exit 1 when no CUDA GPU is present."),
):
    """Versions, CUDA devices, and whether each backend is usable here (with the reason)."""
    from anymodal.doctor import format_report, report

    rep = report()
    results = None
    if selftest:
        from anymodal.selftest import format_table, run_selftest

        results = run_selftest(progress=None if as_json else lambda m: typer.echo(m, err=True))
    if as_json:
        typer.echo(json.dumps({**rep, **({"selftest": results} if results is not None else {})}, indent=2))
    else:
        typer.echo(format_report(rep))
        if results is not None:
            typer.echo("\nself-test:\n" + format_table(results))
    if require_gpu and not rep["devices"]:
        typer.echo("error: --require-gpu: no CUDA GPU is visible here", err=True)
        sys.exit(1)
    if results is not None and any(r["status"] == "fail" for r in results):
        sys.exit(1)


def main():
    cli_app.main(app)


if __name__ == "__main__":
    main()
