"""render.console: on a terminal as rich makes it; elsewhere (cron log, CI, pipe) no line is
padded past its content and rows fold only past $COLUMNS or render.WIDE."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from devtrip_scale.scaling.render import WIDE, console


def table(reason: str) -> Table:
    t = Table(title="devscale check — namespace devtrip", title_justify="left")
    for column in ("Deployment", "Reason"):
        t.add_column(column, overflow="fold")
    t.add_row("api", reason)
    return t


def lines(reason: str) -> list[str]:
    out = io.StringIO()
    console(out).print(table(reason))
    return out.getvalue().splitlines()


def test_short_table_is_as_wide_as_its_content() -> None:
    text = lines("DesiredWithinRange")
    assert text[0] == "devscale check — namespace devtrip"
    assert max(len(line) for line in text) < 40
    assert all(line == line.rstrip() for line in text)


def test_long_rows_fold_at_the_wide_limit_and_carry_no_colour_codes() -> None:
    text = lines("x" * 500)
    assert max(len(line) for line in text) == WIDE
    assert not any("\x1b[" in line for line in text)


@pytest.mark.parametrize(("columns", "width"), [pytest.param("120", 120, id="columns-120"),
                                                pytest.param("junk", WIDE, id="columns-junk")])
def test_columns_sets_the_fold(monkeypatch: pytest.MonkeyPatch, columns: str, width: int
                               ) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    assert max(len(line) for line in lines("y" * 500)) == width
