"""The conventions every command follows, in one place: its options and flags are parsed, its
output printed and its errors turned into exit codes the same way (and async bodies run)."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from devtrip_scale.core.errors import ConfigError, DevscaleError, ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from devtrip_scale.scaling.config import Settings


class _Stderr:
    """Standard error as a rich Console, made on first use: rich costs a `--help` a third of
    its start-up, and `--help` prints nothing through it."""

    _console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return getattr(self._console, name)


err: Console = _Stderr()  # type: ignore[assignment]


class Group(TyperGroup):
    """A command group whose `--help`, `--install-completion` and `--show-completion` read
    False, not None, when the command line does not give them.

    Typer 0.29 coerces every parameter's value through a pydantic TypeAdapter unless it already
    is a bool, and those three flags default to None: every `devscale COMMAND …` imported
    pydantic and built three adapters only to learn that the group's `--help` was not given.
    Only options that pass nothing to the command (`expose_value=False`) are touched: their
    value reaches their callback alone, and each callback reads None and False alike.
    """

    def get_params(self, ctx: Any) -> list[Any]:  # ctx: Typer 0.29's own click Context
        params: list[Any] = super().get_params(ctx)
        for param in params:
            if not param.expose_value and getattr(param, "is_flag", False) \
                    and param.default is None:
                param.default = False
        return params


class Output(StrEnum):
    """How `check` and `simulate` print their result."""

    table = "table"
    json = "json"


class ListOutput(StrEnum):
    """How `check` and `status` print: one line per Deployment, every detail, or JSON."""

    table = "table"
    wide = "wide"
    json = "json"


ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="DEVSCALE_CONFIG", help="The YAML configuration file.",
                 dir_okay=False, metavar="<file>"),
]
NamespaceOption = Annotated[str | None, typer.Option(
    "--namespace", "-n", metavar="<namespace>",
    help="Namespace of the targets (overrides the config and $NAMESPACE).")]
KubeconfigOption = Annotated[str | None, typer.Option(
    "--kubeconfig", metavar="<file>", help="kubeconfig file (default: in-cluster, then "
    "$KUBECONFIG or ~/.kube/config).")]
ContextOption = Annotated[str | None, typer.Option(
    "--context", metavar="<name>", help="kubeconfig context to use (default: its current one).")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an unexpected error, print its traceback (also "
    "DEBUG=1).")]
OutputOption = Annotated[Output, typer.Option(
    "--output", "-o", help="table for people, json for machines (one document, also on "
    "errors).")]
ListOutputOption = Annotated[ListOutput, typer.Option(
    "--output", "-o", help="table: one line per Deployment; wide: every row and each "
    "metric's reading, target and replicas; json for machines (one document, also on errors).")]
DeploymentOption = Annotated[list[str] | None, typer.Option(
    "--deployment", "-d", metavar="<name>", help="Only this target Deployment (repeatable).")]
WorkersConfigOption = Annotated[Path, typer.Option(
    "--config", "-c", envvar="DEVSCALE_WORKERS_CONFIG", help="The workers YAML configuration.",
    dir_okay=False, metavar="<file>")]
DurationMetavar = "<duration>"
# `-o json` documents carry this; README "JSON output" documents each version's fields.
JSON_SCHEMA_VERSION = 1
_root_debug = False  # `devscale --debug COMMAND`: set by the root callback on every invocation


def set_root_debug(value: bool) -> None:
    """The root callback's `--debug`, seen by every command's `debugging()`."""
    global _root_debug
    _root_debug = value


def example(command: str) -> str:
    """A command's `--help` epilog: one example, printed as written (`\\b`: not rewrapped)."""
    return f"\b\nExample:\n  {command}"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: the lease is released on the way out


def debugging(flag: bool = False) -> bool:
    """--debug on the command or before it, or DEBUG=1 in the environment.

    $DEBUG is read here rather than as the options' envvar: a value click cannot read as a
    boolean (DEBUG=express:* of Node's debug module, say) must not make every command fail.
    """
    env = os.environ.get("DEBUG", "").strip().lower()
    return flag or _root_debug or env in ("1", "true", "yes", "on")


def guard(debug: bool, body: Callable[[], int],
          on_error: Callable[[ExitCode, str], None] | None = None) -> None:
    """Run a command body; map devscale's errors to their exit codes, hide tracebacks.

    `on_error` (given for `-o json`) writes the failure's document to stdout.
    """
    debug = debugging(debug)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = body()
    except DevscaleError as e:
        err.print(f"devscale: {e}", style="red", markup=False)
        if debug:
            err.print(traceback.format_exc(), markup=False)
        if on_error is not None:
            on_error(e.exit_code, str(e))
        raise typer.Exit(int(e.exit_code)) from None
    except KeyboardInterrupt:
        err.print("devscale: interrupted", style="red")
        if on_error is not None:
            on_error(ExitCode.INTERRUPTED, "interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as e:  # the last line of defence: one line, no traceback unless --debug
        message = f"internal error: {type(e).__name__}: {e}"
        err.print(f"devscale: {message}", style="red", markup=False)
        if debug:
            err.print(traceback.format_exc(), markup=False)
        else:
            err.print("run again with --debug for the traceback", style="dim")
        if on_error is not None:
            on_error(ExitCode.INTERNAL, message)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None
    raise typer.Exit(code)


def run_async(main: Callable[[], Any]) -> Any:
    """The one place that runs an event loop for a command: `main()` is a coroutine function."""
    import asyncio

    return asyncio.run(main())


def print_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout, `schemaVersion` first."""
    print(json.dumps({"schemaVersion": JSON_SCHEMA_VERSION, **document}, indent=2))


def json_failure(context: Callable[[], dict[str, Any]]) -> Callable[[ExitCode, str], None]:
    """An `on_error` for `guard`: the failure as the command's JSON document, with the fields
    `context()` gives at that moment."""

    def write(code: ExitCode, message: str) -> None:
        print_json({**context(), "exitCode": int(code),
                    "error": {"kind": code.name.lower(), "message": message}})

    return write


def out() -> Console:
    """Standard output: a terminal's width; otherwise (cron log, CI, a pipe) render.WIDE columns
    at most, each line only as long as its content."""
    from devtrip_scale.scaling.render import console

    return console(sys.stdout)


def load(path: Path, namespace: str | None = None) -> Settings:
    """The config file, validated, with `-n` (when given) over its namespace."""
    from devtrip_scale.scaling.config import load_config

    return load_config(path, overrides={"namespace": namespace} if namespace else None)


def parse_duration(text: str, option: str | None = None) -> timedelta:
    """`30s`, `2m`, `1h`, `7d` as a timedelta; `option` names the flag in the ConfigError a bad
    value raises (`run` and `simulate` share this parser). A bare number has no unit and is
    refused: seconds or minutes, the user says which."""
    import math

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    what = f"{option} {text!r}" if option else repr(text)
    if text.replace(".", "", 1).isdigit():
        raise ConfigError(f"{what} has no unit: write {text}s, {text}m or {text}h")
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise ConfigError(f"{what}: not a duration such as 30s, 2m, 1h or 7d") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what}: the duration must be positive, such as 30s or 2m")
    return timedelta(seconds=seconds)


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    """`host:port`, `:port` or `[::1]:port` as (host, port); a ConfigError names the flag."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag} {text!r}: not host:port such as 0.0.0.0:8080 or "
                          "127.0.0.1:9100 (the port 1-65535)")
    return host.strip("[]") or "0.0.0.0", int(port)
