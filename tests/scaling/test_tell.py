"""What a check's report is worth telling (pure): each kind of notice from a report."""

from __future__ import annotations

from devtrip_scale.scaling.models import Decision, Proposal
from devtrip_scale.scaling.report import CheckReport, TargetResult
from devtrip_scale.scaling.tell import notices_for
from tests.conftest import NOW


def decision(name: str, current: int, desired: int, reason: str, wanted: int | None = None,
             action: str = "none") -> Decision:
    cpu = Proposal("cpu", "Utilization", 70, 140, wanted or desired)
    return Decision(name, current, desired, wanted if wanted is not None else desired,
                    action, reason, "msg", (cpu,), "cpu")  # type: ignore[arg-type]


def report(*results: TargetResult, metric_errors: dict[str, str] | None = None) -> CheckReport:
    r = CheckReport("devtrip", False, NOW, results=list(results))
    r.metric_errors = metric_errors or {}
    return r


def test_each_kind_of_notice() -> None:
    notices = notices_for(report(
        TargetResult("api", decision("api", 2, 4, "DesiredWithinRange"), applied=True),
        TargetResult("web", decision("web", 8, 10, "TooManyReplicas", wanted=14), applied=True),
        TargetResult("jobs", decision("jobs", 3, 3, "MissingMetrics")),
        TargetResult("db", error="forbidden: cannot patch deployments/scale/db"),
        metric_errors={"rps": "cannot connect to Prometheus"}))
    by_key = {n.key: n for n in notices}
    assert by_key["scaled:api:up"].title == "api scaled up: 2 → 4"
    assert by_key["scaled:api:up"].text == "cpu 140 against a target of 70 (DesiredWithinRange)"
    assert by_key["capacity_exhausted:web"].severity == "critical"
    assert by_key["capacity_exhausted:web"].title == "web needs 14 replicas but its maximum is 10"
    assert by_key["held:jobs"].kind == "held"
    assert by_key["failed:db"].text.startswith("forbidden")
    assert by_key["failed:metric:rps"].kind == "failed"
