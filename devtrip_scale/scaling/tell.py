"""What a check's report is worth telling: the notices of one run (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from devtrip_scale.notify.notices import Notice
from devtrip_scale.scaling.report import CheckReport, TargetResult


def notices_for(report: CheckReport) -> list[Notice]:
    """Every notice a run's report warrants (pure)."""
    notices: list[Notice] = []
    for r in report.results:
        notices.extend(_for_target(r, report.dry_run))
    for metric, error in report.metric_errors.items():
        notices.append(Notice("failed", "critical", f"failed:metric:{metric}",
                              f"metric {metric} could not be read", error))
    if report.history_error is not None:
        notices.append(Notice("failed", "critical", "failed:run:history",
                              "devscale could not save its history", report.history_error))
    return notices


def _for_target(r: TargetResult, dry_run: bool) -> Iterable[Notice]:
    # A fleet's Deployment is `namespace/name`: its own quiet period, its namespace's channel.
    name, d = (f"{r.namespace}/{r.deployment}" if r.namespace else r.deployment), r.decision
    if r.error is not None:
        yield Notice("failed", "critical", f"failed:{name}", f"{name}: scaling failed", r.error,
                     name)
    if d is None:
        return
    if r.applied and not dry_run:
        direction = "up" if d.desired_replicas > d.current_replicas else "down"
        why = d.why()
        yield Notice("scaled", "info", f"scaled:{name}:{direction}",
                     f"{name} scaled {direction}: {d.current_replicas} → {d.desired_replicas}",
                     f"{why} ({d.reason})" if why else d.reason, name)
    if d.capacity_exhausted:
        wanted = d.recommendation
        yield Notice("capacity_exhausted", "critical", f"capacity_exhausted:{name}",
                     f"{name} needs {wanted} replicas but its maximum is {d.desired_replicas}",
                     f"{d.deciding_metric} asks for {wanted}; raise maxReplicas or add "
                     "capacity", name)
    if r.capacity is not None:
        yield Notice("capacity_exhausted", "critical", f"unschedulable:{name}",
                     f"{name}: pods cannot be scheduled", r.capacity, name)
    if d.held:
        yield Notice("held", "warning", f"held:{name}", f"{name} held at {d.current_replicas}: "
                     "metrics missing", d.message, name)
