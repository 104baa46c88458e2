"""What one run did: each Deployment's result and the run's report, with its exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devtrip_scale.core.errors import ExitCode
from devtrip_scale.core.trace import Trace
from devtrip_scale.notify.notices import Notice
from devtrip_scale.scaling.models import Decision
from devtrip_scale.scaling.ports import MetricQuery


@dataclass
class TargetResult:
    """What happened to one Deployment in this run."""

    deployment: str
    decision: Decision | None = None
    applied: bool = False
    error: str | None = None
    skipped: str | None = None
    warnings: list[str] = field(default_factory=list)
    capacity: str | None = None   # pods the scheduler cannot place: "capacity: 3 of 8 pods …"
    namespace: str = ""           # the Deployment's namespace; "" is the report's own
    policy: str | None = None     # a fleet pass: the policy the Deployment joined
    deferred: str | None = None   # a fleet pass: the write a cap held back to the next pass


@dataclass
class CheckReport:
    """Everything one run did, for the table, the JSON output and the exit code."""

    namespace: str
    dry_run: bool
    started_at: datetime
    results: list[TargetResult] = field(default_factory=list)
    queries: list[MetricQuery] = field(default_factory=list)
    metric_errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    trace: Trace = field(default_factory=Trace)
    notified: list[Notice] = field(default_factory=list)
    notify_failures: list[str] = field(default_factory=list)
    history_error: str | None = None
    lock_lost: str | None = None

    def namespace_of(self, result: TargetResult) -> str:
        """The namespace one result's Deployment lives in."""
        return result.namespace or self.namespace

    @property
    def exit_code(self) -> ExitCode:
        if self.lock_lost is not None:
            return ExitCode.LOCKED
        failed = [r for r in self.results if r.error is not None]
        if failed:
            return ExitCode.PARTIAL if len(failed) < len(self.results) else ExitCode.KUBERNETES
        if self.history_error is not None:
            return ExitCode.KUBERNETES
        if self.metric_errors:
            return ExitCode.METRICS
        if self.notify_failures:
            return ExitCode.NOTIFY
        return ExitCode.OK
