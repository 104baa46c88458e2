"""One pass over all targets: read metrics, decide, write replicas and history, via ports only."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from devtrip_scale import policy
from devtrip_scale.config import Settings, TargetModel
from devtrip_scale.errors import ExitCode, KubeConflict, KubeError
from devtrip_scale.models import Decision, History, MetricReading, Observation, PolicySpec
from devtrip_scale.ports import (
    HistoryStore,
    MetricQuery,
    MetricResult,
    MetricsSource,
    ReplicaTarget,
    Workload,
)
from devtrip_scale.presets import render
from devtrip_scale.trace import Trace

WRITE_RETRIES = 3


@dataclass
class TargetResult:
    """What happened to one Deployment in this run."""

    deployment: str
    decision: Decision | None = None
    applied: bool = False
    error: str | None = None


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

    @property
    def exit_code(self) -> ExitCode:
        failed = [r for r in self.results if r.error is not None]
        if failed:
            return ExitCode.PARTIAL if len(failed) < len(self.results) else ExitCode.KUBERNETES
        if self.metric_errors:
            return ExitCode.METRICS
        return ExitCode.OK


def metric_queries(settings: Settings) -> list[MetricQuery]:
    """The PromQL of every metric, placeholders filled: one query per metric for all targets."""
    return [
        MetricQuery(m.name, url=m.http.url, field=m.http.field) if m.http is not None
        else MetricQuery(m.name, render(m.promql, namespace=settings.namespace, window=m.window))
        for m in settings.metrics
    ]


def resolve_targets(settings: Settings, deployments: ReplicaTarget,
                    only: Collection[str] = ()) -> tuple[list[tuple[Workload, TargetModel]],
                                                         list[TargetResult]]:
    """The Deployments the config names, each with the config entry that selected it.

    Named Deployments that do not exist, and `only` names that are not targets, come back as
    failed results.
    """
    found: dict[str, tuple[Workload, TargetModel]] = {}
    missing: list[TargetResult] = []
    by_name = [t for t in settings.targets if t.deployment]
    if by_name:
        everything = {w.name: w for w in deployments.list(None)}
        for t in by_name:
            if t.deployment in everything:
                found[str(t.deployment)] = (everything[str(t.deployment)], t)
            else:
                missing.append(TargetResult(str(t.deployment), error=(
                    f"deployment {t.deployment} not found in namespace {settings.namespace}")))
    for t in settings.targets:
        if t.selector:
            for w in deployments.list(t.selector):
                found.setdefault(w.name, (w, t))
    if only:
        for name in only:
            if name not in found:
                missing.append(TargetResult(name, error=(
                    f"--deployment {name} is not a target of this config "
                    f"in namespace {settings.namespace}")))
        found = {k: v for k, v in found.items() if k in only}
        missing = [m for m in missing if m.deployment in only]
    return sorted(found.values(), key=lambda pair: pair[0].name), missing


def observe(workload: Workload, settings: Settings, results: list[MetricResult]) -> Observation:
    """The readings of one Deployment, cut from the batched query results."""
    readings = []
    for metric, result in zip(settings.metrics, results, strict=True):
        value, why = result.reading_for(workload.name)
        readings.append(MetricReading(metric.name, metric.target.type, metric.target.value,
                                      value, why))
    return Observation(workload.name, workload.replicas, tuple(readings))


def run_check(
    settings: Settings,
    source: MetricsSource,
    deployments: ReplicaTarget,
    history: HistoryStore,
    now: datetime,
    *,
    dry_run: bool = False,
    only: Collection[str] = (),
    trace: Trace | None = None,
) -> CheckReport:
    """Read → decide → act for every target. One target's failure does not stop the others."""
    report = CheckReport(settings.namespace, dry_run, now, trace=trace or Trace())
    targets, missing = resolve_targets(settings, deployments, only)
    report.queries = metric_queries(settings)
    results = source.fetch(report.queries)
    report.metric_errors = {r.name: r.error for r in results if r.error is not None}
    histories, problems = history.load()
    report.warnings.extend(problems)

    updated: dict[str, History] = {}
    for workload, target in targets:
        spec = settings.policy_for(target)
        result, new_history = _one_target(workload, spec, settings, results, deployments,
                                          histories.get(workload.name, History()), now, dry_run)
        report.results.append(result)
        if new_history is not None:
            updated[workload.name] = new_history
    report.results.extend(missing)
    if updated and not dry_run:
        try:
            history.save(updated)
        except KubeError as e:
            report.warnings.append(f"history not saved: {e}")
    return report


def _one_target(workload: Workload, spec: PolicySpec, settings: Settings,
                results: list[MetricResult], deployments: ReplicaTarget, past: History,
                now: datetime, dry_run: bool) -> tuple[TargetResult, History | None]:
    result = TargetResult(workload.name)
    for attempt in range(WRITE_RETRIES):
        decision = policy.decide(observe(workload, settings, results), spec, past, now)
        result.decision = decision
        if dry_run or decision.desired_replicas == decision.current_replicas:
            return result, policy.remember(past, decision, spec, now, written=None)
        try:
            deployments.scale(workload.name, decision.desired_replicas, workload.resource_version)
        except KubeConflict as e:
            if attempt + 1 == WRITE_RETRIES:
                result.error = (f"{e}; gave up after {WRITE_RETRIES} attempts: something else "
                                "keeps changing this Deployment")
                return result, None
            try:
                workload = deployments.get(workload.name)
            except KubeError as again:
                result.error = str(again)
                return result, None
            continue
        except KubeError as e:
            result.error = str(e)
            return result, policy.remember(past, decision, spec, now, written=None)
        result.applied = True
        return result, policy.remember(past, decision, spec, now,
                                       written=decision.desired_replicas)
    return result, None  # pragma: no cover - the loop always returns
