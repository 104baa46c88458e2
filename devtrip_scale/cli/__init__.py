"""The `devscale` command line: the Typer app, one module per command group, and `main()`.

Each command parses its flags, loads the config, builds adapters (`_wiring`), runs, renders and
maps errors to an exit code (`_common.guard`). Commands import their adapters inside their
bodies, so `devscale --help` does not load Kubernetes, Redis or httpx.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from devtrip_scale import __version__
from devtrip_scale.cli import (
    check,
    config,
    cron,
    manifests,
    notify,
    pipeline,
    run,
    simulate,
    status,
    workers,
)
from devtrip_scale.cli._common import Group, example, set_root_debug

app = typer.Typer(
    help="Size Kubernetes Deployments to their Prometheus load with the HPA's algorithm.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        print(f"devscale {__version__}")
        raise typer.Exit()


@app.callback(epilog=example("devscale config init devscale.yaml && devscale check -c "
              "devscale.yaml --dry-run"))
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Debug output for any command (also DEBUG=1): the "
        "traceback of an unexpected error.")] = False,
) -> None:
    """devscale reads load from Prometheus and sets Deployment replicas as the HPA would."""
    set_root_debug(debug)


# Single commands, in the order `devscale --help` lists them.
app.command(epilog=check.EPILOG)(check.check)
app.command(epilog=run.EPILOG)(run.run)
app.command(epilog=simulate.EPILOG)(simulate.simulate)
app.command(epilog=status.EPILOG)(status.status)
# Command groups, one module each, listed after the single commands.
app.add_typer(config.app, name="config", cls=Group)
app.add_typer(notify.app, name="notify", cls=Group)
app.add_typer(cron.app, name="cron", cls=Group)
app.add_typer(manifests.app, name="manifests", cls=Group)
app.add_typer(workers.app, name="workers", cls=Group)
app.add_typer(pipeline.app, name="pipeline", cls=Group)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="devscale")
    sys.exit(0)  # pragma: no cover - typer exits first
