"""`devscale --help`, `workers --help` and `pipeline --help` at 80 columns: each command's
one-line description is a whole sentence, never cut with "..." mid-sentence."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from devtrip_scale.cli import app


@pytest.mark.parametrize("group", [["workers"], ["pipeline"]], ids=["workers", "pipeline"])
def test_command_descriptions_are_not_cut(group: list[str]) -> None:
    result = CliRunner().invoke(app, [*group, "--help"], terminal_width=80,
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:", 1)[1].splitlines()
    rows = [line for line in commands if line.strip()]
    assert rows and not [line for line in rows if line.rstrip().endswith("...")], rows


def test_the_worker_groups_are_not_cut_in_the_root_help() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=80, env={"COLUMNS": "80"})
    rows = [line for line in result.output.splitlines()
            if line.strip().startswith(("workers ", "pipeline "))]
    assert len(rows) == 2 and not [r for r in rows if r.endswith("...")], rows
