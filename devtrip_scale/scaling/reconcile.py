"""One pass over all targets: read metrics, decide, write replicas and history, via ports only."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

from devtrip_scale.core.errors import KubeConflict, KubeError
from devtrip_scale.core.trace import Trace
from devtrip_scale.notify import Notice, Notifier, NotifyState, fan_out, select
from devtrip_scale.scaling import policy
from devtrip_scale.scaling.config import MetricModel, Settings, TargetModel
from devtrip_scale.scaling.fleet import Joined, fleet_queries, join, key, policy_specs
from devtrip_scale.scaling.models import (
    Decision,
    History,
    MetricReading,
    Observation,
    PolicySpec,
    Unschedulable,
)
from devtrip_scale.scaling.ports import (
    EventSink,
    FleetTarget,
    HistoryStore,
    MetricQuery,
    MetricResult,
    MetricsSource,
    ReplicaTarget,
    Workload,
)
from devtrip_scale.scaling.presets import render
from devtrip_scale.scaling.report import CheckReport, TargetResult
from devtrip_scale.scaling.selectors import matches, parse_selector
from devtrip_scale.scaling.sources import fetch_in_background
from devtrip_scale.scaling.tell import notices_for

WRITE_RETRIES = 3
SAVERS = 8   # a fleet pass writes this many namespaces' history ConfigMaps at a time
PAUSED = "devscale.devtrip.io/paused"
ARGO_MARKS = ("argocd.argoproj.io/tracking-id", "app.kubernetes.io/instance")
GITOPS_FIX = ("if a GitOps tool manages this Deployment, make it ignore /spec/replicas "
              "(Argo CD: ignoreDifferences with jsonPointers [/spec/replicas] and the sync "
              "option RespectIgnoreDifferences=true), or leave replicas out of the manifest")

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

K = TypeVar("K")
V = TypeVar("V")
OTHER_SCALERS = "an HPA also scales these Deployments"   # what a failed read leaves unknown
WAITING_PODS = "pods wait for capacity"


def metric_queries(settings: Settings) -> list[MetricQuery]:
    """The PromQL of every metric, placeholders filled: one query per metric for all targets."""
    return [
        MetricQuery(m.name, url=m.http.url, field=m.http.field) if m.http is not None
        else MetricQuery(m.name, render(m.promql, namespace=settings.namespace, window=m.window))
        for m in settings.metrics
    ]


def resolve_targets(settings: Settings, deployments: ReplicaTarget, only: Collection[str] = ()
                    ) -> tuple[list[tuple[Workload, TargetModel]], list[TargetResult],
                               list[Workload]]:
    """The Deployments the config names, each with the config entry that selected it.

    Named Deployments that do not exist, and `only` names that are not targets, come back as
    failed results. The third value is every Deployment of the namespace: one list call, its
    labels matched against each target's selector here (as the API server would match them).
    """
    found: dict[str, tuple[Workload, TargetModel]] = {}
    missing: list[TargetResult] = []
    everything = deployments.list(None)
    by_name = {w.name: w for w in everything}
    for t in settings.targets:
        if t.deployment:
            name = str(t.deployment)
            if name in by_name:
                found.setdefault(name, (by_name[name], t))
            else:
                missing.append(TargetResult(name, error=(
                    f"deployment {name} not found in namespace {settings.namespace}")))
    for t in settings.targets:
        if t.selector:
            wanted = parse_selector(t.selector)
            for w in everything:
                if matches(wanted, w.labels):
                    found.setdefault(w.name, (w, t))
    if only:
        for name in only:
            if name not in found and all(m.deployment != name for m in missing):
                missing.append(TargetResult(name, error=(
                    f"--deployment {name} is not a target of this config "
                    f"in namespace {settings.namespace}")))
        found = {k: v for k, v in found.items() if k in only}
        missing = [m for m in missing if m.deployment in only]
    return sorted(found.values(), key=lambda pair: pair[0].name), missing, everything


def observe(workload: Workload, settings: Settings, results: list[MetricResult],
            stuck: Unschedulable | None = None) -> Observation:
    """The readings of one Deployment, cut from the batched query results."""
    readings = []
    for metric, result in zip(settings.metrics, results, strict=True):
        value, why = result.reading_for(workload.name)
        readings.append(MetricReading(metric.name, metric.target.type, metric.target.value,
                                      value, why, result.pods.get(workload.name)))
    ready = workload.ready_replicas
    unready = max(workload.pods - ready, 0) if ready is not None and workload.pods else 0
    if stuck is not None:
        stuck = replace(stuck, of=max(workload.pods or 0, workload.replicas, stuck.pods))
    return Observation(workload.name, workload.replicas, tuple(readings), ready_pods=ready,
                       unready_pods=unready, unschedulable=stuck)


def invalid_readings(targets: Sequence[Workload], results: Sequence[MetricResult]
                     ) -> dict[str, str]:
    """Per metric, the targets whose reading makes no sense (negative): the run's metrics fail."""
    bad: dict[str, str] = {}
    for r in results:
        named = [f"{w.name}: {r.invalid[w.name]}" for w in targets if w.name in r.invalid]
        if named:
            bad[r.name] = "invalid readings, not used: " + "; ".join(named)
    return bad


@dataclass
class _Run:
    """The ports and settings one pass works with."""

    settings: Settings
    deployments: ReplicaTarget
    events: EventSink | None
    now: datetime
    dry_run: bool
    report: CheckReport
    writable: Callable[[], str | None]

    def lock_lost(self) -> bool:
        """Whether the run's Lease is no longer surely held: then it writes nothing more."""
        if self.report.lock_lost is None:
            self.report.lock_lost = self.writable()
        return self.report.lock_lost is not None


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
    events: EventSink | None = None,
    notifiers: Sequence[Notifier] = (),
    recovered: Sequence[Notice] = (),
    writable: Callable[[], str | None] = lambda: None,
) -> CheckReport:
    """Read → decide → act → tell for every target.

    One target's failure does not stop the others; notifications go out after the scaling and
    their failure changes no scaling outcome. `recovered` are run-level conditions this run
    resolves by reaching its report; they go out in the same message. `writable` is asked
    before every write: a reason (the Lease was lost) stops all writes of the run.
    """
    report = CheckReport(settings.namespace, dry_run, now, trace=trace or Trace())
    report.queries = metric_queries(settings)
    answers = fetch_in_background(source, report.queries)   # while the cluster is read
    targets, missing, everything = resolve_targets(settings, deployments, only)
    scalers = _or_warn(deployments.other_scalers, report, OTHER_SCALERS) if targets else {}
    stuck = _or_warn(deployments.unschedulable, report, WAITING_PODS) if targets else {}
    results = answers()
    report.metric_errors = {r.name: r.error for r in results if r.error is not None}
    report.metric_errors.update(invalid_readings([w for w, _ in targets], results))
    histories, problems = history.load()
    report.warnings.extend(problems)

    run = _Run(settings, deployments, events, now, dry_run, report, writable)
    updated: dict[str, History] = {}
    for workload, target in targets:
        past = histories.get(workload.uid, History())
        result = TargetResult(workload.name)
        report.results.append(result)
        if _skip(workload, scalers, result):
            _event(run, workload, "Warning" if workload.name in scalers else "Normal",
                   "ScalingSkipped", str(result.skipped))
            continue
        seen = partial(observe, settings=settings, results=results,
                       stuck=stuck.get(workload.name))
        capacity = seen(workload).unschedulable
        if capacity is not None:
            result.capacity = capacity.text(now)
            _event(run, workload, "Warning", "Unschedulable", result.capacity)
        new_history = _one_target(run, workload, settings.policy_for(target), seen, past,
                                  result)
        if new_history is not None:
            updated[workload.uid] = new_history
    report.results.extend(missing)
    if dry_run:
        return report
    names = {w.uid: w.name for w in everything}
    gone = [key for key in histories if key not in names]   # deleted, or keyed by name before
    state = _notify_state(report, history.notes) if notifiers else None
    send, notes = _plan(settings, report, state) if state is not None else ([], None)
    if run.lock_lost():
        report.history_error = f"history not saved: {report.lock_lost}"
    elif updated or notes is not None or gone:
        try:
            history.save({uid: (h, names[uid]) for uid, h in updated.items()}, notes,
                         remove=gone)
        except KubeError as e:
            report.history_error = (f"history not saved: {e}; the next run decides without "
                                    "the memory that holds back a scale-down")
    if state is not None:
        if report.history_error is not None:  # nothing was kept: resolve nothing, say why
            send = _plan(settings, report, state)[0]
        else:
            send = [*recovered, *send]
        report.notified = send
        report.notify_failures = fan_out(settings.namespace, send, notifiers)
    return report


def _notify_state(report: CheckReport, notes: str | None) -> NotifyState:
    try:
        return NotifyState.decode(notes)
    except (ValueError, KeyError, TypeError):
        report.warnings.append("notification state was corrupt; starting afresh")
        return NotifyState()


def _plan(settings: Settings, report: CheckReport, state: NotifyState
          ) -> tuple[list[Notice], str]:
    """What is new since the quiet period, and the notification state to keep (pure)."""
    quiet = timedelta(minutes=settings.notify.quiet_minutes)
    send, new_state = select(notices_for(report), state, report.started_at, quiet)
    return send, new_state.encode()


def _or_warn(read: Callable[[], dict[K, V]], report: CheckReport, what: str) -> dict[K, V]:
    """A read that only refines the pass (other scalers, pods waiting for capacity): on a
    Kubernetes error the pass goes on without it and says so."""
    try:
        return read()
    except KubeError as e:
        report.warnings.append(f"cannot tell whether {what}: {e}")
        return {}


def _skip(workload: Workload, scalers: dict[str, str], result: TargetResult) -> bool:
    if workload.annotations.get(PAUSED, "").lower() == "true":
        result.skipped = f"paused by the annotation {PAUSED}: \"true\""
    elif workload.name in scalers:
        result.skipped = (f"already scaled by {scalers[workload.name]}; devscale does not fight "
                          "it (remove one of the two)")
    return result.skipped is not None


def _one_target(run: _Run, workload: Workload, spec: PolicySpec,
                seen: Callable[[Workload], Observation], past: History, result: TargetResult
                ) -> History | None:
    if past.last_written is not None and past.last_written != workload.replicas:
        result.warnings.append(
            f"replicas are {workload.replicas}, but devscale last wrote {past.last_written}: "
            f"someone or something reset them; {GITOPS_FIX}")
    for attempt in range(WRITE_RETRIES):
        decision = policy.decide(seen(workload), spec, past, run.now)
        result.decision = decision
        if run.dry_run or decision.desired_replicas == decision.current_replicas:
            return policy.remember(past, decision, spec, run.now, written=None)
        if run.lock_lost():
            result.error = f"not scaled to {decision.desired_replicas}: {run.report.lock_lost}"
            return None
        try:
            run.deployments.scale(workload.name, decision.desired_replicas,
                                  workload.resource_version)
        except KubeConflict as e:
            if attempt + 1 < WRITE_RETRIES:
                try:
                    workload = run.deployments.get(workload.name)
                    continue
                except KubeError as again:
                    result.error = str(again)
            else:
                result.error = (f"{e}; gave up after {WRITE_RETRIES} attempts: something else "
                                "keeps changing this Deployment")
            _event(run, workload, "Warning", "ScaleFailed", result.error or "")
            return None
        except KubeError as e:
            result.error = str(e)
            _event(run, workload, "Warning", "ScaleFailed", f"could not scale to "
                   f"{decision.desired_replicas}: {e}")
            return policy.remember(past, decision, spec, run.now, written=None)
        result.applied = True
        if any(mark in workload.annotations or mark in workload.labels for mark in ARGO_MARKS):
            result.warnings.append(f"Argo CD tracks this Deployment and may revert the change; "
                                   f"{GITOPS_FIX}")
        _event(run, workload, "Normal", "Scaled", scaled_message(decision))
        return policy.remember(past, decision, spec, run.now, written=decision.desired_replicas)
    return None  # pragma: no cover - the loop always returns


def scaled_message(d: Decision) -> str:
    """`Scaled from 2 to 4: cpu 140 against a target of 70 (DesiredWithinRange)`."""
    why = d.why()
    return (f"Scaled from {d.current_replicas} to {d.desired_replicas}"
            f"{': ' + why if why else ''} ({d.reason})")


def _event(run: _Run, workload: Workload, type_: Literal["Normal", "Warning"], reason: str,
           message: str) -> None:
    if run.events is None or run.dry_run:
        return
    try:
        run.events.record(workload, type_, reason, message)
    except KubeError as e:
        run.report.warnings.append(f"event not recorded on deployment/{workload.name}: {e}")


def run_fleet(
    settings: Settings,
    source: MetricsSource,
    cluster: FleetTarget,
    history_of: Callable[[str], HistoryStore],
    now: datetime,
    *,
    dry_run: bool = False,
    only: Collection[str] = (),
    in_namespaces: Collection[str] = (),
    trace: Trace | None = None,
    events_of: Callable[[str], EventSink] | None = None,
    notifiers: Sequence[Notifier] = (),
    route: Callable[[str], Sequence[Notifier]] | None = None,
    recovered: Sequence[Notice] = (),
    writable: Callable[[], str | None] = lambda: None,
) -> CheckReport:
    """One pass over a fleet config's namespaces: read → decide → act → tell, as run_check.

    One cluster-wide list of Deployments (paginated), kept to the covered namespaces and to
    those whose annotation joins a policy; one query per metric for all of them; a write only
    where replicas change, at most `maxWritesPerPass` in all and `maxWritesPerNamespace` per
    namespace (the rest computed, reported as deferred, left to the next pass); each
    namespace's history in its own ConfigMap (`history_of(namespace)`) and Events beside its
    Deployments. A bad annotation is an error naming the Deployment, its namespace and the
    value; that Deployment is left alone and the pass goes on. `route(namespace)` gives the
    channels of a namespace's notices (default: `notifiers`).
    """
    report = CheckReport(settings.namespace, dry_run, now, trace=trace or Trace())
    fleet = settings.fleet
    covered = covered_namespaces(settings, cluster)
    everything = [w for w in cluster.list_all(fleet.deployment_selector, fleet.page_size)
                  if covered is None or w.namespace in covered]
    for ns in in_namespaces:
        if covered is not None and ns not in covered:
            report.warnings.append(f"-n {ns}: not a namespace this config covers; "
                                   "nothing in it is scaled")
    joined: list[tuple[Workload, Joined]] = []
    specs = policy_specs(settings)
    for w in everything:
        if (in_namespaces and w.namespace not in in_namespaces) or (only and w.name not in only):
            continue
        chosen = join(settings, w.annotations, specs)
        if isinstance(chosen, Joined):
            joined.append((w, chosen))
        elif chosen is not None:
            report.results.append(TargetResult(w.name, namespace=w.namespace, error=(
                f"deployment {w.namespace}/{w.name}: {chosen}; left alone")))
            if events_of is not None and not dry_run:
                _fleet_event(report, events_of, w, "Warning", "InvalidScalingPolicy", chosen)
    for name in only:
        if not any(w.name == name for w, _ in joined) and \
                not any(r.deployment == name for r in report.results):
            report.results.append(TargetResult(name, error=(
                f"--deployment {name}: no Deployment of that name has joined a policy "
                f"(annotation {fleet.policy_annotation}) in the namespaces this config covers")))
    joined.sort(key=lambda pair: (pair[0].namespace, pair[0].name))
    namespaces = sorted({w.namespace for w, _ in joined})
    scalers = _or_warn(cluster.other_scalers, report, OTHER_SCALERS) if joined else {}
    stuck = _or_warn(cluster.unschedulable, report, WAITING_PODS) if joined else {}
    report.queries = fleet_queries(settings, namespaces) if joined else []
    results = {r.name: r for r in source.fetch(report.queries)} if joined else {}
    report.metric_errors = {r.name: r.error for r in results.values() if r.error is not None}
    for r in results.values():
        bad = [f"{k}: {r.invalid[k]}" for k in (key(w.namespace, w.name) for w, _ in joined)
               if k in r.invalid]
        if bad:
            report.metric_errors[r.name] = "invalid readings, not used: " + "; ".join(bad)

    stores: dict[str, HistoryStore] = {}
    histories: dict[str, dict[str, History]] = {}

    def store(ns: str) -> HistoryStore:
        if ns not in stores:
            stores[ns] = history_of(ns)
            try:
                histories[ns], problems = stores[ns].load()
                report.warnings.extend(problems)
            except KubeError as e:
                histories[ns] = {}
                report.warnings.append(f"history of namespace {ns} not read ({e}); its "
                                       "Deployments are decided without it")
        return stores[ns]

    updated: dict[str, dict[str, History]] = {}
    writes: dict[str, int] = {}
    uids: dict[str, dict[str, str]] = {}
    for w in everything:
        uids.setdefault(w.namespace, {})[w.uid] = w.name
    saving = _Saving(report, writable, dry_run)

    def save_job(ns: str, notes: str | None = None) -> Callable[[], None] | None:
        """The write of a namespace's history ConfigMap, None when nothing in it changed."""
        names = uids.get(ns, {})
        mine = updated.get(ns, {})
        gone = [k for k in histories.get(ns, {}) if k not in names]
        if not (mine or gone or notes is not None):
            return None
        return partial(store(ns).save, {uid: (h, names[uid]) for uid, h in mine.items()},
                       notes, remove=gone)

    for i, (workload, chosen) in enumerate(joined):
        ns = workload.namespace
        if i and joined[i - 1][0].namespace not in (ns, settings.namespace):
            # joined is sorted by namespace: the one before is decided; its write can go
            # while this one is decided (the home namespace's waits for the notes)
            saving.start(joined[i - 1][0].namespace, save_job)
        store(ns)
        past = histories[ns].get(workload.uid, History())
        result = TargetResult(workload.name, namespace=ns, policy=chosen.policy)
        report.results.append(result)
        events = events_of(ns) if events_of is not None else None
        capped = _cap_reached(settings, writes, ns)
        run = _Run(settings, cluster.in_namespace(ns), events, now, dry_run or capped is not None,
                   report, writable)
        scaler = scalers.get((ns, workload.name))
        if _skip(workload, {workload.name: scaler} if scaler else {}, result):
            if not dry_run:
                _event(replace(run, dry_run=False), workload,
                       "Warning" if scaler else "Normal", "ScalingSkipped", str(result.skipped))
            continue
        seen = partial(_observe_fleet, metrics=chosen.metrics, results=results,
                       stuck=stuck.get((ns, workload.name)))
        capacity = seen(workload).unschedulable
        if capacity is not None:
            result.capacity = capacity.text(now)
            if not dry_run:
                _event(replace(run, dry_run=False), workload, "Warning", "Unschedulable",
                       result.capacity)
        new_history = _one_target(run, workload, chosen.spec, seen, past, result)
        d = result.decision
        if capped is not None and not dry_run and d is not None and \
                d.desired_replicas != d.current_replicas:
            result.deferred = (f"not scaled to {d.desired_replicas} in this pass: {capped}; "
                               "the next pass decides again")
        if result.applied:
            writes[ns] = writes.get(ns, 0) + 1
        if new_history is not None and new_history != past:   # unchanged: nothing to write
            updated.setdefault(ns, {})[workload.uid] = new_history
    deferred = sum(r.deferred is not None for r in report.results)
    if deferred:
        report.warnings.append(f"{deferred} scaling change(s) deferred to the next pass by "
                               f"the write caps ({fleet.max_writes_per_pass} per pass, "
                               f"{fleet.max_writes_per_namespace} per namespace)")
    if dry_run:
        return report

    state = _notify_state(report, store(settings.namespace).notes) if notifiers or route \
        else None
    send, notes = _plan(settings, report, state) if state is not None else ([], None)
    for ns in sorted(set(stores) | ({settings.namespace} if notes is not None else set())):
        saving.start(ns, partial(save_job, notes=notes if ns == settings.namespace else None))
    saving.finish()
    if state is not None:
        if report.history_error is not None:
            send = _plan(settings, report, state)[0]
        else:
            send = [*recovered, *send]
        report.notified = send
        for ns, notices in _by_namespace(send, settings.namespace).items():
            channels = notifiers
            if route is not None:
                try:
                    channels = route(ns)
                except KubeError as e:
                    report.warnings.append(f"notices of namespace {ns} went to the default "
                                           f"channels: its own could not be looked up: {e}")
            report.notify_failures.extend(fan_out(ns, notices, channels))
    return report


class _Saving:
    """A fleet pass's history writes, each namespace's own ConfigMap, SAVERS at a time on
    threads while the pass decides the next namespaces; the Lease is asked before each one.
    A failure is kept as a message naming its namespace; `finish` waits for them all and
    sets the report's history error."""

    def __init__(self, report: CheckReport, writable: Callable[[], str | None],
                 dry_run: bool) -> None:
        self._report, self._writable, self._dry_run = report, writable, dry_run
        self._started: set[str] = set()
        self._futures: list[Future[str | None]] = []
        self._pool: ThreadPoolExecutor | None = None

    def start(self, namespace: str, job_of: Callable[[str], Callable[[], None] | None]
              ) -> None:
        """Write `namespace`'s history (once), if anything in it changed."""
        if self._dry_run or namespace in self._started:
            return
        self._started.add(namespace)
        job = job_of(namespace)
        if job is None:
            return
        report = self._report
        if report.lock_lost is None:
            report.lock_lost = self._writable()
        if report.lock_lost is not None:   # `finish` says so
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(SAVERS, thread_name_prefix="devscale-history")
        self._futures.append(self._pool.submit(_one_save, namespace, job))

    def finish(self) -> None:
        """Wait for every write; the failures (and what the lost Lease left) as the report's
        history error."""
        problems = [p for p in (f.result() for f in self._futures) if p is not None]
        if self._pool is not None:
            self._pool.shutdown()
        report = self._report
        if report.lock_lost is not None:
            written = len(self._futures)
            report.history_error = (f"history not saved: {report.lock_lost}" + (
                f" ({written} namespace(s) written before it was lost)" if written else ""))
        elif problems:
            report.history_error = ("history not saved: " + "; ".join(problems) +
                                    "; the next run decides those without the memory that "
                                    "holds back a scale-down")


def _one_save(namespace: str, job: Callable[[], None]) -> str | None:
    """One namespace's history write; its failure as a message naming the namespace."""
    try:
        job()
    except KubeError as e:
        return f"namespace {namespace}: {e}"
    return None


def covered_namespaces(settings: Settings, cluster: FleetTarget) -> set[str] | None:
    """The namespaces a fleet config covers; None: all of them."""
    if settings.namespaces is not None:
        return set(settings.namespaces)
    if settings.namespace_selector is not None:
        return set(cluster.namespaces(settings.namespace_selector))
    return None


def _cap_reached(settings: Settings, writes: dict[str, int], namespace: str) -> str | None:
    fleet = settings.fleet
    if sum(writes.values()) >= fleet.max_writes_per_pass:
        return f"the pass has made its {fleet.max_writes_per_pass} writes (maxWritesPerPass)"
    if writes.get(namespace, 0) >= fleet.max_writes_per_namespace:
        return (f"namespace {namespace} has had its {fleet.max_writes_per_namespace} writes "
                "(maxWritesPerNamespace)")
    return None


def _observe_fleet(workload: Workload, *, metrics: Sequence[MetricModel],
                   results: dict[str, MetricResult], stuck: Unschedulable | None
                   ) -> Observation:
    """One fleet Deployment's readings of its policy's metrics, by `namespace/name`."""
    readings = []
    name = key(workload.namespace, workload.name)
    for metric in metrics:
        got = results.get(metric.name)
        value, why = got.reading_for(name) if got is not None else (None, "not read")
        readings.append(MetricReading(metric.name, metric.target.type, metric.target.value,
                                      value, why))
    ready = workload.ready_replicas
    unready = max(workload.pods - ready, 0) if ready is not None and workload.pods else 0
    if stuck is not None:
        stuck = replace(stuck, of=max(workload.pods or 0, workload.replicas, stuck.pods))
    return Observation(workload.name, workload.replicas, tuple(readings), ready_pods=ready,
                       unready_pods=unready, unschedulable=stuck)


def _fleet_event(report: CheckReport, events_of: Callable[[str], EventSink], workload: Workload,
                 type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
    try:
        events_of(workload.namespace).record(workload, type_, reason, message)
    except KubeError as e:
        report.warnings.append(f"event not recorded on deployment/{workload.name} in "
                               f"namespace {workload.namespace}: {e}")


def _by_namespace(notices: Sequence[Notice], home: str) -> dict[str, list[Notice]]:
    """A fleet's notices by the namespace they concern (`namespace/name`); the run's own
    (a metric that failed, the history) go with the config's `namespace`."""
    grouped: dict[str, list[Notice]] = {}
    for n in notices:
        ns = n.deployment.split("/", 1)[0] if n.deployment and "/" in n.deployment else home
        grouped.setdefault(ns, []).append(n)
    return grouped
