"""What the command modules share (cli/_common.py): the duration and host:port flag parsers,
valid and refused values and the flag each error names; and the package's promise that
`devscale --help` imports no adapter library (Kubernetes, Redis, httpx, gRPC, pydantic); the
command groups' unexposed flags read False when not given."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from devtrip_scale.cli._common import Group, parse_duration, parse_listen
from devtrip_scale.core.errors import ConfigError
from tests.conftest import ROOT


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)),
    ("2m", timedelta(minutes=2)),
    ("1h", timedelta(hours=1)),
    ("7d", timedelta(days=7)),
    ("1.5m", timedelta(seconds=90)),
    (" 45s ", timedelta(seconds=45)),
], ids=["seconds", "minutes", "hours", "days", "fraction", "spaces"])
def test_a_duration_with_a_unit_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("30", "--interval '30' has no unit: write 30s, 30m or 30h"),
    ("2.5", "--interval '2.5' has no unit"),
    ("soon", "--interval 'soon': not a duration such as 30s, 2m, 1h or 7d"),
    ("5x", "--interval '5x': not a duration"),
    ("0s", "--interval '0s': the duration must be positive"),
    ("-1m", "--interval '-1m': the duration must be positive"),
    ("infs", "--interval 'infs': the duration must be positive"),
    ("", "--interval '': not a duration"),
], ids=["bare-number", "bare-fraction", "word", "unknown-unit", "zero", "negative", "infinite",
        "empty"])
def test_a_bad_duration_is_a_config_error_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "--interval")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    (":9100", ("0.0.0.0", 9100)),
    ("[::1]:8443", ("::1", 8443)),
    ("localhost:65535", ("localhost", 65535)),
], ids=["ipv4", "port-only", "ipv6", "highest-port"])
def test_a_listen_address_parses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "host:0", "host:65536"],
                         ids=["no-colon", "no-port", "named-port", "port-zero", "port-too-high"])
def test_a_bad_listen_address_names_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--listen .*: not host:port such as"):
        parse_listen(text)


def test_help_imports_no_adapter_library() -> None:
    """Commands import their adapters in their bodies: `devscale --help` stays quick."""
    probe = (
        "import sys\n"
        "from devtrip_scale.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='devscale')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('kubernetes', 'redis', 'httpx', 'grpc', 'pydantic', 'yaml', 'matplotlib')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)),\n"
        "      file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert "Usage: devscale" in proc.stdout
    assert proc.stderr.strip() == ""


def test_group_flags_that_reach_only_callbacks_read_false_and_the_rest_keep_none() -> None:
    """Group: the group's own `--help` and completion flags (expose_value=False) read False
    when not given, so Typer need not coerce None through pydantic; a command's tri-state
    `bool | None` option still reaches it as None."""
    seen: dict[str, bool | None] = {}
    demo = typer.Typer(cls=Group, add_completion=True)

    @demo.callback()
    def root(switch: Annotated[bool | None, typer.Option("--switch/--no-switch")] = None
             ) -> None:
        seen["switch"] = switch

    @demo.command()
    def sub() -> None:
        """Sub."""

    result = CliRunner().invoke(demo, ["sub"])
    assert result.exit_code == 0, result.output
    assert seen == {"switch": None}
    group = typer.main.get_command(demo)
    defaults = {p.name: p.default for p in group.get_params(group.make_context("demo", ["sub"]))}
    assert defaults["help"] is False
    assert defaults["install_completion"] is False and defaults["show_completion"] is False
    assert defaults["switch"] is None
