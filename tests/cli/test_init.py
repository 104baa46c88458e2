"""The app of cli/__init__.py: `main()` builds only the command it is asked to run, and that
command behaves and prints its help exactly as in the whole app; `app` is every command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from devtrip_scale.cli import NAMES, app, build_app
from tests.conftest import ROOT


def _help(args: list[str], only: str | None) -> str:
    result = CliRunner().invoke(build_app(only), [*args, "--help"], terminal_width=100,
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_app_is_every_command_in_the_help_order() -> None:
    commands = getattr(typer.main.get_command(app), "commands", {})
    assert list(commands) == list(NAMES)
    assert list(getattr(typer.main.get_command(build_app("config")), "commands", {})) == [
        "config"]


@pytest.mark.parametrize("name", NAMES)
def test_one_command_alone_prints_the_help_of_the_whole_app(name: str) -> None:
    assert _help([name], name) == _help([name], None)


def test_a_group_alone_keeps_its_commands_help() -> None:
    assert _help(["config", "validate"], "config") == _help(["config", "validate"], None)


def test_a_name_that_is_no_command_is_refused() -> None:
    with pytest.raises(ValueError, match="devscale has no command 'chek'"):
        build_app("chek")


@pytest.mark.parametrize(("argv", "absent"), [
    (["config", "validate", "-c", "config/devtrip.yaml"],
     ("devtrip_scale.cli.check", "devtrip_scale.cli.pipeline", "devtrip_scale.cli.workers")),
    (["check", "--help"], ("devtrip_scale.cli.config", "devtrip_scale.cli.pipeline", "pydantic")),
])
def test_main_builds_the_named_command_alone(argv: list[str], absent: tuple[str, ...]) -> None:
    """Through the console script's own entry: what the command does not need is not loaded."""
    probe = (
        "import sys\n"
        f"sys.argv = ['devscale', *{argv!r}]\n"
        "from devtrip_scale.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    import json\n"
        "    print('exit', e.code, json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.stderr.startswith("exit 0 "), proc.stderr
    loaded = set(json.loads(proc.stderr.split(" ", 2)[2]))
    assert f"devtrip_scale.cli.{argv[0]}" in loaded
    assert not loaded & set(absent)


def test_options_before_the_command_build_the_whole_app() -> None:
    result = subprocess.run([sys.executable, "-m", "devtrip_scale", "--debug", "config",
                             "validate", "-c", "config/devtrip.yaml"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config/devtrip.yaml: valid (")
