"""render.console: on a terminal as rich makes it; elsewhere (cron log, CI, pipe) no line is
padded past its content and rows fold only past $COLUMNS or render.WIDE. render.table: the check
as `kubectl get hpa` prints HPAs — a summary, one line per Deployment in 80 columns, NAMESPACE
and grouping for a fleet, folding past render.FOLD rows, the breakdown with -o wide and -d, colour
only on a terminal without NO_COLOR. The README's table of `check -o json` has exactly the keys a
document has."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from devtrip_scale.cli._common import JSON_SCHEMA_VERSION
from devtrip_scale.core.trace import TraceEntry
from devtrip_scale.notify.notices import Notice
from devtrip_scale.scaling import render
from devtrip_scale.scaling.models import Decision, Proposal, Reason
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


# ----------------------------------------------------------------------------- the check table

NOW = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)


def proposals(cpu: float, memory: float, users: float, current: int) -> tuple[Proposal, ...]:
    return (Proposal("cpu", "Utilization", 70, cpu, math.ceil(current * cpu / 70)),
            Proposal("memory", "Utilization", 80, memory, 2),
            Proposal("active_users", "AverageValue", 100, users, math.ceil(users / 100)))


def decision(name: str, current: int, desired: int, reason: Reason, message: str,
             deciding: str, cpu: float = 70, memory: float = 50, users: float = 150,
             **extra: Any) -> Decision:
    action = "scale_up" if desired > current else "scale_down" if desired < current else "none"
    return Decision(name, current, desired, extra.pop("recommendation", desired), action,
                    reason, message, proposals(cpu, memory, users, current), deciding,
                    ready_pods=current, **extra)


def sandbox_report(dry_run: bool = False) -> CheckReport:
    report = CheckReport("devtrip", dry_run, NOW)
    report.results = [
        TargetResult("api", decision("api", 2, 4, "DesiredWithinRange", "cpu asks for 4", "cpu",
                                     cpu=140), applied=not dry_run),
        TargetResult("search", decision(
            "search", 4, 4, "ScaleDownStabilized", "300s scale-down stabilization window "
            "holds 4", "cpu", cpu=30, recommendation=2, limits=("ScaleDownStabilized",),
            held_until=NOW + timedelta(seconds=200))),
        TargetResult("web", decision("web", 4, 4, "WithinTolerance",
                                     "memory is within the tolerance of its target", "memory",
                                     memory=75)),
        TargetResult("payments-gateway-internal", error='deployments.apps "payments-gateway-'
                     'internal" is forbidden: User "system:serviceaccount:devtrip:devscale" '
                     'cannot patch resource "deployments/scale"'),
    ]
    return report


def shown(report: CheckReport, width: int = 80, **options: bool) -> list[str]:
    """The table as a `width`-column console shows it (as the CLI passes its console's width)."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(
        render.table(report, width=width, **options))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_check_prints_a_summary_then_one_line_per_deployment_in_80_columns() -> None:
    assert shown(sandbox_report()) == [
        "4 Deployments in namespace devtrip: 1 scaled up, 1 held, 1 unchanged, 1 error",
        "NAME                REPLICAS   METRIC           ACTION      REASON",
        "api                 2 → 4      cpu 140%/70%     scaled up   DesiredWithinRange…",
        "search              4 → 4      cpu 30%/70%      held        ScaleDownStabilized…",
        "web                 4 → 4      memory 75%/80%   none        WithinTolerance…",
        "payments-gateway…   -          -                failed      deployments.apps…",
        'error: payments-gateway-internal: deployments.apps "payments-gateway-internal"',
        'is forbidden: User "system:serviceaccount:devtrip:devscale" cannot patch',
        'resource "deployments/scale"',
    ]


def test_a_wide_terminal_shows_the_reasons_whole_and_a_dry_run_says_so() -> None:
    lines = shown(sandbox_report(dry_run=True), width=160)
    assert lines[0] == ("4 Deployments in namespace devtrip (dry run): 1 would scale up, "
                        "1 held, 1 unchanged, 1 error")
    assert [line.split("   ")[-1].strip() for line in lines[2:5]] == [
        "DesiredWithinRange: cpu asks for 4",
        "ScaleDownStabilized: 300s scale-down stabilization window holds 4 (for 3m20s)",
        "WithinTolerance: memory is within the tolerance of its target"]
    assert "would scale up" in lines[2]


def test_wide_and_one_target_show_every_metric_and_mark_the_deciding_one() -> None:
    lines = shown(sandbox_report(), wide=True)
    assert lines[1].split() == ["NAME", "REPLICAS", "READY", "METRIC", "ACTION", "REASON"]
    assert lines[2].split()[:4] == ["api", "2", "→", "4"] and lines[2].split()[4] == "2/2"
    assert [line.strip() for line in lines[3:8]] == [
        "METRIC           READING / TARGET        ASKS",
        "* cpu            140% / 70%              → 4",
        "memory         50% / 80%               → 2",
        "active_users   150 / 100 per replica   → 2",
        "reason: DesiredWithinRange: cpu asks for 4"]
    text = " ".join(" ".join(lines).split())
    assert "reason: ScaleDownStabilized: 300s scale-down stabilization window holds 4 (until " \
           "2026-12-04T17:03:20+00:00, 3m20s from now)" in text
    assert "recommended 2, limited by ScaleDownStabilized" in text
    assert 'error: deployments.apps "payments-gateway-internal" is forbidden: User ' \
           '"system:serviceaccount:devtrip:devscale" cannot patch resource ' \
           '"deployments/scale"' in text
    assert all(len(line) <= 80 for line in lines)
    # -d: the same breakdown under the default columns
    narrowed = shown(sandbox_report(), details=True)
    assert narrowed[1].split() == ["NAME", "REPLICAS", "METRIC", "ACTION", "REASON"]
    assert [line.strip() for line in narrowed[3:8]] == [line.strip() for line in lines[3:8]]


def fleet(rows_per_namespace: int) -> CheckReport:
    report = CheckReport("platform", False, NOW)
    for ns in ("team-b", "team-a", "team-c"):
        for i in range(rows_per_namespace):
            report.results.append(TargetResult(
                f"svc-{i}", decision(f"svc-{i}", 2, 2, "WithinTolerance",
                                     "cpu is within the tolerance of its target", "cpu"),
                namespace=ns))
    report.results.append(TargetResult("api", decision("api", 2, 4, "DesiredWithinRange",
                                                       "cpu asks for 4", "cpu", cpu=140),
                                       applied=True, namespace="team-c"))
    report.results.append(TargetResult("web", error="deployments.apps \"web\" not found",
                                       namespace="team-a"))
    return report


def test_a_fleet_report_leads_with_the_namespace_and_groups_by_it() -> None:
    lines = shown(fleet(2))
    assert lines[0] == "8 Deployments in 3 namespaces: 1 scaled up, 6 unchanged, 1 error"
    assert lines[1].split() == ["NAMESPACE", "NAME", "REPLICAS", "METRIC", "ACTION", "REASON"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["team-a", "svc-0"], ["team-a", "svc-1"], ["team-a", "web"], ["team-b", "svc-0"],
        ["team-b", "svc-1"], ["team-c", "svc-0"], ["team-c", "svc-1"], ["team-c", "api"],
        ["error:", "team-a/web:"]]
    assert all(len(line) <= 80 for line in lines)


def test_a_big_report_folds_the_rows_that_did_nothing_into_a_count_per_namespace() -> None:
    report = fleet(20)                       # 62 rows: past render.FOLD
    lines = shown(report)
    assert lines[0] == "62 Deployments in 3 namespaces: 1 scaled up, 60 unchanged, 1 error"
    assert [line.split()[:2] for line in lines[2:]] == [
        ["team-a", "web"], ["team-a", "20"], ["team-b", "20"], ["team-c", "api"],
        ["team-c", "20"], ["error:", "team-a/web:"]]
    assert " ".join(lines[3].split()) == "team-a 20 more unchanged (-o wide lists them)"
    wide = shown(report, wide=True)
    assert len([line for line in wide if line.startswith("team-")]) == 62
    assert not any("more unchanged" in line for line in wide)


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for colour in (True, False):
        if not colour:
            monkeypatch.setenv("NO_COLOR", "1")
        out = Terminal()
        console(out).print(render.table(sandbox_report(), width=80))
        text = out.getvalue()
        assert ("\x1b[32mscaled up" in text) is colour          # green action
        assert ("\x1b[31m" in text) is colour                   # the failed row's red reason
        assert "\x1b[1mcpu 140%/70%" in text                    # the deciding metric in bold
    plain = "\n".join(shown(sandbox_report(), wide=True))
    assert "\x1b[" not in plain and "* cpu" in plain            # off a terminal: `*` marks it


# ---------------------------------------------------------------- the README's JSON table


def full_report() -> CheckReport:
    """A pass with every part a document can have: a decided, a failed, a skipped and a fleet's
    deferred Deployment, both kinds of query, a notice, a trace, a lost lock and an unsaved
    history."""
    at = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    decision = Decision("api", 2, 4, 4, "scale_up", "DesiredWithinRange", "cpu asks for 4",
                        (Proposal("cpu", "Utilization", 70, 140, 4),
                         Proposal("rps", "AverageValue", 100, None, None, error="no series")),
                        "cpu", at, ("ScaleUpLimit",), 1)
    report = CheckReport("devtrip", False, at, results=[
        TargetResult("api", decision, applied=True, warnings=["replicas reset by GitOps"],
                     capacity="capacity: 1 of 4 pods unschedulable for 6 min: 0/3 nodes"),
        TargetResult("web", error="HTTP 403"), TargetResult("old", skipped="paused"),
        TargetResult("batch", namespace="team-a", policy="batch",   # a fleet pass's
                     deferred="2 → 3 deferred: the cap of 1 write per namespace was reached")],
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
