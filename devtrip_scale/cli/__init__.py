"""The `devscale` command line: the Typer app, one module per command group, and `main()`.

Each command parses its flags, loads the config, builds adapters (`_wiring`), runs, renders and
maps errors to an exit code (`_common.guard`). Commands import their adapters inside their
bodies, so `devscale --help` does not load Kubernetes, Redis or httpx. `main()` builds only the
command it is asked to run (`devscale config validate …` imports and builds the `config` group
alone); `app`, every command, is built on first use.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Annotated

import typer

from devtrip_scale import __version__
from devtrip_scale.cli._common import Group, example, set_root_debug

# The single commands, then the command groups, in the order `devscale --help` lists them.
GROUPS = ("config", "notify", "cron", "manifests", "workers", "pipeline")
NAMES = ("check", "run", "simulate", "status", *GROUPS)


def _version(value: bool) -> None:
    if value:
        print(f"devscale {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Debug output for any command (also DEBUG=1): the "
        "traceback of an unexpected error.")] = False,
) -> None:
    """devscale reads load from Prometheus and sets Deployment replicas as the HPA would."""
    set_root_debug(debug)


def build_app(only: str | None = None) -> typer.Typer:
    """The devscale app: every command, or the one of NAMES that `only` names (with the same
    root options and callback, so that command runs and prints its help exactly as in the whole
    app). Typer turns every registered function into a click command before it parses a flag;
    a command's module is imported only when the command is registered."""
    app = typer.Typer(
        help="Size Kubernetes Deployments to their Prometheus load with the HPA's algorithm.",
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=True,
        cls=Group,
    )
    app.callback(epilog=example("devscale config init devscale.yaml && devscale check -c "
                                "devscale.yaml --dry-run"))(_root)
    for name in NAMES if only is None else (only,):
        if name not in NAMES:
            raise ValueError(f"devscale has no command {name!r}")
        module = import_module(f"devtrip_scale.cli.{name}")
        if name in GROUPS:
            app.add_typer(module.app, name=name, cls=Group)
        else:
            app.command(epilog=module.EPILOG)(getattr(module, name))
    return app


def __getattr__(name: str) -> typer.Typer:
    """`devtrip_scale.cli.app`: the whole app, built on first use."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()["app"] = build_app()
    return app


def main() -> None:
    """Console-script entry point: a command line that starts with a command's name builds
    that command alone; anything else (options first, `--help`, a mistyped name that wants
    suggestions, shell completion) builds them all."""
    args = sys.argv[1:]
    build_app(args[0] if args and args[0] in NAMES else None)(prog_name="devscale")
    sys.exit(0)  # pragma: no cover - typer exits first
