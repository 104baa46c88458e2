"""report.py: a run's exit code from its report, the precedence of each failure over the next
(lost lock, failed targets, history, metrics, notifications), table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from devtrip_scale.core.errors import ExitCode
from devtrip_scale.scaling.report import CheckReport, TargetResult

OK = TargetResult("api", applied=True)
BAD = TargetResult("web", error="forbidden: cannot patch deployments/scale/web")


@pytest.mark.parametrize(("results", "extra", "expected"), [
    ([OK], {}, ExitCode.OK),
    ([], {}, ExitCode.OK),
    ([OK], {"notify_failures": ["slack: 500"]}, ExitCode.NOTIFY),
    ([OK], {"metric_errors": {"cpu": "down"}, "notify_failures": ["x"]}, ExitCode.METRICS),
    ([OK], {"history_error": "conflict", "metric_errors": {"cpu": "down"}},
     ExitCode.KUBERNETES),
    ([OK, BAD], {"history_error": "conflict"}, ExitCode.PARTIAL),
    ([BAD], {}, ExitCode.KUBERNETES),
    ([OK, BAD], {"lock_lost": "taken by runner-2"}, ExitCode.LOCKED),
], ids=["all-applied", "no-targets", "notify-failed", "metrics-over-notify",
        "history-over-metrics", "partial-over-history", "every-target-failed",
        "lost-lock-over-all"])
def test_exit_code_precedence(results: list[TargetResult], extra: dict[str, object],
                              expected: ExitCode) -> None:
    report = replace(CheckReport("devtrip", False, datetime(2026, 1, 1, tzinfo=UTC),
                                 results=results), **extra)
    assert report.exit_code == expected
