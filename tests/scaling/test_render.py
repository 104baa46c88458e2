"""render.console: on a terminal as rich makes it; elsewhere (cron log, CI, pipe) no line is
padded past its content and rows fold only past $COLUMNS or render.WIDE. The README's table of
`check -o json` has exactly the keys a document has."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.table import Table

from devtrip_scale.cli._common import JSON_SCHEMA_VERSION
from devtrip_scale.core.trace import TraceEntry
from devtrip_scale.notify.notices import Notice
from devtrip_scale.scaling.models import Decision, Proposal
from devtrip_scale.scaling.ports import MetricQuery
from devtrip_scale.scaling.render import WIDE, console, to_json
from devtrip_scale.scaling.report import CheckReport, TargetResult
from tests.conftest import ROOT


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


# ---------------------------------------------------------------- the README's JSON table


def full_report() -> CheckReport:
    """A pass with every part a document can have: a decided, a failed and a skipped
    Deployment, both kinds of query, a notice, a trace, a lost lock and an unsaved history."""
    at = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    decision = Decision("api", 2, 4, 4, "scale_up", "DesiredWithinRange", "cpu asks for 4",
                        (Proposal("cpu", "Utilization", 70, 140, 4),
                         Proposal("rps", "AverageValue", 100, None, None, error="no series")),
                        "cpu", at, ("ScaleUpLimit",), 1)
    report = CheckReport("devtrip", False, at, results=[
        TargetResult("api", decision, applied=True, warnings=["replicas reset by GitOps"],
                     capacity="capacity: 1 of 4 pods unschedulable for 6 min: 0/3 nodes"),
        TargetResult("web", error="HTTP 403"), TargetResult("old", skipped="paused")],
        queries=[MetricQuery("cpu", "sum(rate(x[2m]))"),
                 MetricQuery("jobs", url="http://q/metrics/waiting-jobs", field="waiting")],
        metric_errors={"rps": "no series"}, warnings=["a warning"],
        notified=[Notice("scaled", "info", "k", "api scaled up", "text", "api")],
        notify_failures=["slack: 404 no_service"], history_error="history not saved: 409",
        lock_lost="the Lease devscale-lock was taken over")
    report.trace.entries.append(TraceEntry("promql", "sum(rate(x[2m]))", 3.2))
    return report


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """`deployments[].metrics[].name`-style paths of every key of a JSON document (a mapping
    inside a mapping, such as metricErrors, is a value: its keys are data)."""
    paths: set[str] = set()
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            paths.add(f"{path}[]")
            for element in item:
                paths |= key_paths(element, f"{path}[].")
        else:
            paths.add(path)
    return paths


def readme_check_fields() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("`check`'s document, field by field", 1)[1]
    rows = section.split("| field | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    return {row.split("|")[1].strip().strip("`") for row in rows.splitlines()}


def test_the_readme_json_table_has_exactly_the_keys_of_a_check_document() -> None:
    """Both ways: a key the output gains fails here until the README names it, and a row the
    output no longer has fails too. The common keys (schemaVersion, exitCode, error) have the
    table above it."""
    doc = {"schemaVersion": JSON_SCHEMA_VERSION,
           **json.loads(to_json(full_report(), debug=True)), "error": None}
    common = {"schemaVersion", "exitCode", "error"}
    assert key_paths(doc) - common == readme_check_fields()
