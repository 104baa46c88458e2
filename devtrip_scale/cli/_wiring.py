"""The composition root: Settings → the adapters a pass needs (metrics source, run alerts, the
Lease) and the pass itself over them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from devtrip_scale.cli._common import err

if TYPE_CHECKING:
    from collections.abc import Sequence

    from devtrip_scale.core.trace import Trace
    from devtrip_scale.kube.lease import LeaseLock
    from devtrip_scale.notify import Notice, Notifier
    from devtrip_scale.notify.runs import MemoryStore, RunAlerts
    from devtrip_scale.scaling.config import Settings
    from devtrip_scale.scaling.ports import MetricsSource
    from devtrip_scale.scaling.report import CheckReport


def metrics_source(settings: Settings, trace: Trace | None = None) -> MetricsSource:
    """Prometheus for PromQL metrics, the JSON reader for URL metrics, sharing the timeout;
    all queried at once under one deadline (the timeout and a second's grace)."""
    from devtrip_scale.scaling.sources import RoutedSource
    from devtrip_scale.scaling.sources.http_json import HttpJsonSource
    from devtrip_scale.scaling.sources.prometheus import PrometheusSource

    timeout = settings.prometheus.timeout_seconds
    return RoutedSource(
        PrometheusSource(settings.prometheus.url, timeout=timeout,
                         token=settings.prometheus_token(), trace=trace),
        HttpJsonSource(timeout=timeout, trace=trace),
        deadline_seconds=timeout + 1,
    )


def lease(api: Any, settings: Settings, duration_seconds: int,
          trace: Trace | None = None) -> LeaseLock:
    """The namespace's Lease: one writer at a time across runners."""
    from devtrip_scale.kube.lease import LeaseLock

    return LeaseLock(api, settings.namespace, trace=trace, duration_seconds=duration_seconds)


def check_pass(settings: Settings, api: Any, source: MetricsSource, trace: Trace, *,
               notifiers: Sequence[Notifier], now: datetime, dry_run: bool = False,
               only: Sequence[str] = (), recovered: Sequence[Notice] = (),
               writable: Callable[[], str | None] = lambda: None,
               in_namespaces: Sequence[str] = ()) -> CheckReport:
    """One read → decide → act → tell pass over the cluster's adapters (check and run); a
    fleet config's pass covers its namespaces (`in_namespaces` narrows it)."""
    from devtrip_scale.scaling.deployments import ClusterDeployments, DeploymentTarget
    from devtrip_scale.scaling.events import EventRecorder
    from devtrip_scale.scaling.history import ConfigMapHistory, fleet_histories
    from devtrip_scale.scaling.reconcile import run_check, run_fleet

    ns = settings.namespace
    if settings.is_fleet:
        recorders: dict[str, EventRecorder] = {}

        def events_of(namespace: str) -> EventRecorder:
            return recorders.setdefault(namespace, EventRecorder(api, namespace, trace))

        return run_fleet(
            settings, source, ClusterDeployments(api, trace),
            fleet_histories(api, settings.history_configmap, trace),
            now, dry_run=dry_run, only=tuple(only), in_namespaces=tuple(in_namespaces),
            trace=trace, events_of=events_of, notifiers=notifiers, recovered=recovered,
            writable=writable, route=fleet_route(settings, api, notifiers, trace))
    return run_check(
        settings, source, DeploymentTarget(api, ns, trace),
        ConfigMapHistory(api, ns, settings.history_configmap, trace),
        now, dry_run=dry_run, only=tuple(only), trace=trace,
        events=EventRecorder(api, ns, trace), notifiers=notifiers, recovered=recovered,
        writable=writable)


def fleet_route(settings: Settings, api: Any, notifiers: Sequence[Notifier], trace: Trace,
                env: Mapping[str, str] | None = None
                ) -> Callable[[str], Sequence[Notifier]] | None:
    """A fleet's channels per namespace (`fleet.notifyRoute`): a namespace (or team) whose
    `$SLACK_WEBHOOK_<VALUE>` is set has its own Slack channel instead of the config's; email
    and the rest stay shared. None: every namespace uses `notifiers`."""
    import os

    route = settings.fleet.notify_route
    if route is None:
        return None
    environ = os.environ if env is None else env
    labels: dict[str, dict[str, str]] | None = None
    shared = [n for n in notifiers if n.name != "slack"]
    slack = settings.notify.slack
    kinds = frozenset({*slack.kinds, "test"})
    built: dict[str, Sequence[Notifier]] = {}

    def value_of(namespace: str) -> str | None:
        nonlocal labels
        if route.label is None:
            return namespace
        if labels is None:
            from kubernetes import client

            from devtrip_scale.kube import request

            core = client.CoreV1Api(api)
            found = request(trace, "list", "namespaces", "(all namespaces)", None,
                            lambda: core.list_namespace(_request_timeout=(5, 30)))
            labels = {n.metadata.name: dict(n.metadata.labels or {}) for n in found.items}
        return labels.get(namespace, {}).get(route.label)

    def channels(namespace: str) -> Sequence[Notifier]:
        if namespace not in built:
            from devtrip_scale.notify.slack import SlackNotifier

            value = value_of(namespace)
            url = environ.get(route.env_name(value), "").strip() if value else ""
            built[namespace] = [SlackNotifier(url, kinds,  # type: ignore[arg-type]
                                              timeout=slack.timeout_seconds), *shared] \
                if url.startswith(("https://", "http://")) else notifiers
        return built[namespace]

    return channels


def run_alerts(settings: Settings, notifiers: Sequence[Notifier],
               store: MemoryStore) -> RunAlerts:
    """The alerts about runs themselves (failed, recovered, lock held too long), kept in
    `store` between runs."""
    from devtrip_scale.notify.runs import RunAlerts

    return RunAlerts(store, settings.namespace, notifiers,
                     quiet=timedelta(minutes=settings.notify.quiet_minutes),
                     lock_runs=settings.notify.lock_contention_runs)


def alerting(alerts: RunAlerts | None, now: datetime,
             work: Callable[[Sequence[Notice]], CheckReport]) -> CheckReport:
    """Do a pass; tell a failure that leaves no report, and its recovery in the next report.

    The failure is told after `work` has freed the lock; the error still reaches guard().
    """
    if alerts is None:
        return work(())
    try:
        report = work(alerts.recovered(now))
    except Exception as e:
        _tell_failure(alerts, e, now)
        raise
    if report.history_error is not None:
        return report   # the run's recoveries were not sent: keep the conditions open
    if problem := alerts.completed(now):
        report.warnings.append(problem)
    return report


def _tell_failure(alerts: RunAlerts, error: BaseException, now: datetime) -> None:
    """Notify a run that failed before its report; stderr says what was told or why not."""
    told = alerts.failed(error, now)
    for notice in told.sent:
        err.print(f"devscale: notified: {notice.title}", markup=False)
    for failure in told.failures:
        err.print(f"devscale: notification failed: {failure}", style="red", markup=False)
    if told.problem:
        err.print(f"devscale: {told.problem}", style="yellow", markup=False)
