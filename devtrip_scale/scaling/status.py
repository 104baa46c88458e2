"""`devscale status`: per target Deployment what `kubectl get hpa` shows for an HPA, read-only.

Sources, and nothing else (no Prometheus, no write):
* the Deployments (one list): spec and ready replicas, the paused annotation;
* devscale's history ConfigMap (`ConfigMapHistory.load()`): the recommendations of recent runs,
  the scale events inside the longest window, the replicas devscale last wrote;
* devscale's own Events on the Deployments (one list): the last `Scaled` says why, with the
  deciding metric's reading against its target.

The history keeps no decision, only recommendations. The last decision is recomputed by the same
`policy.decide` from the history as it stood before that run and a single stand-in reading that
asks for the recorded recommendation: the result carries the rule that shaped it and, for a
stabilisation window, until when it holds (for a cooldown, until the cooldown ends).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from devtrip_scale.core import columns
from devtrip_scale.core.columns import KEEP, Cell, Column, age
from devtrip_scale.core.errors import ExitCode, KubeError
from devtrip_scale.scaling import policy
from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.models import Decision, History, MetricReading, Observation, PolicySpec
from devtrip_scale.scaling.ports import FleetTarget, ReplicaTarget, Workload

SCHEMA_VERSION = 1
STAND_IN = "the load"   # the name of the stand-in reading in a recomputed decision's message


def history_of(histories: Mapping[str, History], workload: Workload) -> History | None:
    """The one place that knows how the history ConfigMap keys a Deployment's entry."""
    return histories.get(workload.uid)


@dataclass(frozen=True)
class LastScale:
    at: datetime
    from_replicas: int
    to_replicas: int
    why: str | None = None   # the `Scaled` Event's message, when the Event is still there


@dataclass(frozen=True)
class DevscaleEvent:
    at: datetime | None
    type: str
    reason: str
    message: str


@dataclass
class TargetStatus:
    """One target Deployment as devscale last left it."""

    deployment: str
    spec: PolicySpec | None = None
    targets: list[tuple[str, str, float]] = field(default_factory=list)  # name, type, target
    replicas: int | None = None
    ready_replicas: int | None = None
    paused: bool = False
    last_run: datetime | None = None
    recommendation: int | None = None
    decision: Decision | None = None
    held_until: datetime | None = None
    last_scale: LastScale | None = None
    last_written: int | None = None
    last_event: DevscaleEvent | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    namespace: str = ""      # a fleet's: the Deployment's namespace; "" is the report's own


@dataclass
class StatusReport:
    namespace: str
    time: datetime
    deployments: list[TargetStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def namespace_of(self, status: TargetStatus) -> str:
        """The namespace one Deployment lives in."""
        return status.namespace or self.namespace

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if any(d.error for d in self.deployments) else ExitCode.OK


def last_decision(history: History, spec: PolicySpec, replicas: int
                  ) -> tuple[Decision | None, datetime | None]:
    """The decision of the last run that had readings, recomputed from the history alone.

    The run at the newest recommendation saw the history older than itself and the replicas it
    started from (its scale event's `from`, else today's replicas). A stand-in AverageValue
    reading asking for exactly the recommendation, with no tolerance (the recommendation is
    already past the tolerance), gives `policy.decide` the same input its metrics gave it.
    Returns the decision and, when a window or cooldown holds the replicas, until when.
    """
    if not history.recommendations:
        return None, None
    at, wanted = history.recommendations[-1]
    scaled = [e for e in history.scale_events if e.at == at]
    current = scaled[-1].from_replicas if scaled else replicas
    # strictly older: a first sync's seed carries the run's own time and is not its input
    before = History(tuple(r for r in history.recommendations if r.at < at),
                     tuple(e for e in history.scale_events if e.at < at))
    exact = dataclasses.replace(
        spec, tolerance=0.0,
        scale_up=dataclasses.replace(spec.scale_up, tolerance=None),
        scale_down=dataclasses.replace(spec.scale_down, tolerance=None))
    stand_in = MetricReading(STAND_IN, "AverageValue", 1.0, float(wanted))
    decision = policy.decide(Observation("", current, (stand_in,)), exact, before, at)
    until = decision.held_until
    if decision.reason in ("ScaleUpCooldown", "ScaleDownCooldown") and before.scale_events:
        seconds = spec.scale_up_cooldown_seconds if decision.reason == "ScaleUpCooldown" \
            else spec.scale_down_cooldown_seconds
        until = max(e.at for e in before.scale_events) + timedelta(seconds=seconds)
    return decision, until


def build(settings: Settings, deployments: ReplicaTarget, histories: Mapping[str, History],
          events: Mapping[str, list[DevscaleEvent]], now: datetime,
          only: Collection[str] = ()) -> StatusReport:
    """Put the cluster's and the history's views of each target together (no I/O but the
    target listing through `deployments`)."""
    from devtrip_scale.scaling.reconcile import resolve_targets

    report = StatusReport(settings.namespace, now)
    found, missing, _ = resolve_targets(settings, deployments, only)
    targets: list[tuple[str, str, float]] = [(m.name, m.target.type, m.target.value)
                                             for m in settings.metrics]
    for workload, target in found:
        report.deployments.append(_status_of(
            workload, settings.policy_for(target), targets,
            history_of(histories, workload) or History(), events.get(workload.name, [])))
    for result in missing:
        report.deployments.append(TargetStatus(result.deployment, error=result.error))
    return report


def _status_of(workload: Workload, spec: PolicySpec, targets: list[tuple[str, str, float]],
               history: History, mine: list[DevscaleEvent]) -> TargetStatus:
    """One Deployment's status from its history and its Events."""
    from devtrip_scale.scaling.reconcile import PAUSED

    status = TargetStatus(workload.name, spec, targets, workload.replicas,
                          workload.ready_replicas,
                          workload.annotations.get(PAUSED, "").lower() == "true",
                          namespace=workload.namespace)
    status.last_event = mine[-1] if mine else None
    if history.recommendations:
        status.last_run, status.recommendation = history.recommendations[-1]
    status.decision, status.held_until = last_decision(history, spec, workload.replicas)
    status.last_written = history.last_written
    status.last_scale = _last_scale(history, mine)
    if history.last_written is not None and history.last_written != workload.replicas:
        status.warnings.append(f"replicas are {workload.replicas}, but devscale last wrote "
                               f"{history.last_written}: something else changed them")
    return status


def build_fleet(settings: Settings, cluster: FleetTarget,
                history_of_namespace: Callable[[str], tuple[dict[str, History], list[str]]],
                events_of: Callable[[str], dict[str, list[DevscaleEvent]]], now: datetime,
                only: Collection[str] = (), in_namespaces: Collection[str] = ()
                ) -> StatusReport:
    """A fleet config's status: every opted-in Deployment of its namespaces (one cluster-wide
    list), each namespace's history and Events read once; a bad annotation is an error row."""
    from devtrip_scale.scaling.fleet import Joined, join, policy_specs
    from devtrip_scale.scaling.reconcile import covered_namespaces

    report = StatusReport(settings.namespace, now)
    covered = covered_namespaces(settings, cluster)
    histories: dict[str, dict[str, History]] = {}
    events: dict[str, dict[str, list[DevscaleEvent]]] = {}
    listed = cluster.list_all(settings.fleet.deployment_selector, settings.fleet.page_size)
    specs = policy_specs(settings)
    for w in sorted(listed, key=lambda w: (w.namespace, w.name)):
        if (covered is not None and w.namespace not in covered) or \
                (in_namespaces and w.namespace not in in_namespaces) or \
                (only and w.name not in only):
            continue
        chosen = join(settings, w.annotations, specs)
        if chosen is None:
            continue
        if not isinstance(chosen, Joined):
            report.deployments.append(TargetStatus(
                w.name, namespace=w.namespace,
                error=f"deployment {w.namespace}/{w.name}: {chosen}; left alone"))
            continue
        if w.namespace not in histories:
            histories[w.namespace], problems = history_of_namespace(w.namespace)
            report.warnings.extend(problems)
            events[w.namespace] = events_of(w.namespace)
        targets: list[tuple[str, str, float]] = [(m.name, m.target.type, m.target.value)
                                                 for m in chosen.metrics]
        report.deployments.append(_status_of(
            w, chosen.spec, targets, histories[w.namespace].get(w.uid) or History(),
            events[w.namespace].get(w.name, [])))
    return report


def _last_scale(history: History, events: list[DevscaleEvent]) -> LastScale | None:
    """The newest scale event of the history, else of the Events; the why from a `Scaled`
    Event recorded within a minute of it."""
    scaled = [e for e in events if e.reason == "Scaled" and e.at is not None]
    if history.scale_events:
        last = history.scale_events[-1]
        why = next((e.message for e in reversed(scaled)
                    if e.at is not None and abs((e.at - last.at).total_seconds()) < 60), None)
        return LastScale(last.at, last.from_replicas, last.to_replicas, why)
    for e in reversed(scaled):   # older than the history keeps: the Event still tells
        numbers = _from_to(e.message)
        if numbers is not None and e.at is not None:
            return LastScale(e.at, numbers[0], numbers[1], e.message)
    return None


def _from_to(message: str) -> tuple[int, int] | None:
    """(2, 4) from `Scaled from 2 to 4: …` (reconcile.scaled_message)."""
    words = message.split(":", 1)[0].split()
    if len(words) == 5 and words[:2] == ["Scaled", "from"] and words[3] == "to" \
            and words[2].isdigit() and words[4].isdigit():
        return int(words[2]), int(words[4])
    return None


# ----------------------------------------------------------------------------- reading


def read_events(api_client: Any, namespace: str, warnings: list[str]
                ) -> dict[str, list[DevscaleEvent]]:
    """devscale's Events per Deployment, oldest first; a refusal is a warning, not a failure."""
    from kubernetes import client

    from devtrip_scale.core.trace import Trace
    from devtrip_scale.kube import TIMEOUT, request
    from devtrip_scale.scaling.events import COMPONENT

    core = client.CoreV1Api(api_client)
    try:
        listed = request(Trace(), "list", "events", namespace, None,
                         lambda: core.list_namespaced_event(
                             namespace, field_selector=f"source={COMPONENT}",
                             _request_timeout=TIMEOUT))
    except KubeError as error:
        warnings.append(f"Events not read, the last scale's reason may be missing: {error}")
        return {}
    out: dict[str, list[DevscaleEvent]] = {}
    for ev in listed.items:
        obj = ev.involved_object
        if obj is None or obj.kind != "Deployment":
            continue
        at = ev.last_timestamp or ev.first_timestamp or ev.event_time
        out.setdefault(obj.name, []).append(
            DevscaleEvent(at, ev.type or "", ev.reason or "", ev.message or ""))
    for items in out.values():
        items.sort(key=lambda ev: ev.at.timestamp() if ev.at else 0.0)
    return out


def collect(settings: Settings, api_client: Any, now: datetime, only: Collection[str] = ()
            ) -> StatusReport:
    """Read the Deployments, the history ConfigMap and the Events; change nothing."""
    from devtrip_scale.scaling.deployments import DeploymentTarget
    from devtrip_scale.scaling.history import ConfigMapHistory

    if settings.is_fleet:
        return collect_fleet(settings, api_client, now, only)
    ns = settings.namespace
    histories, problems = ConfigMapHistory(api_client, ns, settings.history_configmap).load()
    warnings = list(problems)
    events = read_events(api_client, ns, warnings)
    report = build(settings, DeploymentTarget(api_client, ns), histories, events, now, only)
    report.warnings[:0] = warnings
    return report


def collect_fleet(settings: Settings, api_client: Any, now: datetime,
                  only: Collection[str] = (), in_namespaces: Collection[str] = ()
                  ) -> StatusReport:
    """A fleet config's status, read-only: one cluster-wide list, each namespace's history
    ConfigMap and Events."""
    from devtrip_scale.scaling.deployments import ClusterDeployments
    from devtrip_scale.scaling.history import fleet_histories

    warnings: list[str] = []
    store_of = fleet_histories(api_client, settings.history_configmap)

    def history(ns: str) -> tuple[dict[str, History], list[str]]:
        try:
            return store_of(ns).load()
        except KubeError as e:
            return {}, [f"history of namespace {ns} not read: {e}"]

    report = build_fleet(settings, ClusterDeployments(api_client), history,
                         lambda ns: read_events(api_client, ns, warnings), now, only,
                         in_namespaces)
    report.warnings.extend(warnings)
    return report


# ----------------------------------------------------------------------------- output


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else ""


def _target_text(name: str, kind: str, value: float) -> str:
    number = f"{value:g}"
    if kind == "Utilization":
        return f"{name} {number}%"
    return f"{name} {number}/replica" if kind == "AverageValue" else f"{name} {number}"


def _ready(s: TargetStatus) -> str:
    if s.replicas is None:
        return "-"
    return f"{s.replicas if s.ready_replicas is None else s.ready_replicas}/{s.replicas}"


def _decided(s: TargetStatus, now: datetime) -> str:
    """The last decision's reason, with its replicas when they are not today's and how much
    longer a window or cooldown holds them: `ScaleDownStabilized for 4m`."""
    d = s.decision
    if d is None:
        return "no run recorded" if s.last_run is None else "-"
    text = d.reason if d.desired_replicas == s.replicas else f"→ {d.desired_replicas} {d.reason}"
    if s.held_until is not None and s.held_until > now:
        text += f" for {age(s.held_until - now)}"
    return text


def _scaled(s: TargetStatus, now: datetime) -> str:
    if s.last_scale is not None:
        return (f"{s.last_scale.from_replicas} → {s.last_scale.to_replicas} "
                f"({age(now - s.last_scale.at)})")
    return f"to {s.last_written}" if s.last_written is not None else "-"


def table(report: StatusReport, *, width: int = 80, wide: bool = False) -> RenderableType:
    """One line per Deployment, as `kubectl get hpa` prints HPAs, at most `width` columns: its
    ready/desired replicas, min/max, the last run's age, the last decision's reason with how
    much longer a window or cooldown holds the replicas, and the last scale with its age; with
    Deployments of several namespaces, NAMESPACE first and the rows grouped by it. `wide`
    adds below each row its metric targets, the decision's message, the held-until time, the
    last scale's reason and the last Event, wrapped between words."""
    namespaces = sorted({report.namespace_of(s) for s in report.deployments})
    fleet = len(namespaces) > 1
    shown = sorted(report.deployments, key=report.namespace_of) if fleet \
        else report.deployments
    cols = [Column("NAMESPACE", (16, 12, 8))] if fleet else []
    cols += [Column("NAME", (24, 14, 10, 8)), Column("READY"), Column("MIN/MAX"),
             Column("LAST RUN"), Column("DECISION", (KEEP, 20, 12, 8)), Column("LAST SCALE")]
    rows: list[list[Cell]] = []
    for s in shown:
        lead = [Cell(report.namespace_of(s))] if fleet else []
        if s.error is not None:
            row = [Cell(s.deployment), Cell("-"), Cell("-"), Cell("-"), Cell("error", "red"),
                   Cell("-")]
        else:
            limits = f"{s.spec.min_replicas}/{s.spec.max_replicas}" if s.spec else "-"
            ran = age(report.time - s.last_run) if s.last_run else "-"
            row = [Cell(s.deployment), Cell(_ready(s) + (" paused" if s.paused else "")),
                   Cell(limits), Cell(ran), Cell(_decided(s, report.time)),
                   Cell(_scaled(s, report.time))]
        rows.append(lead + row)
    sizes = columns.widths(cols, rows, width)
    n = len(report.deployments)
    where = f"{len(namespaces)} namespaces" if fleet else f"namespace {report.namespace}"
    parts: list[RenderableType] = [
        Text(f"{n} Deployment{'' if n == 1 else 's'} in {where}", style="bold")]
    if report.deployments:
        parts.append(columns.line([Cell(c.header) for c in cols], sizes))
    for s, row in zip(shown, rows, strict=True):
        parts.append(columns.line(row, sizes))
        if wide:
            parts += [Text(line) for line in _details(s, width)]
    for s in shown:
        name = f"{report.namespace_of(s)}/{s.deployment}" if fleet else s.deployment
        if s.error is not None:
            parts.append(Text(f"error: {name}: {s.error}", style="red"))
        parts += [Text(f"warning: {name}: {w}", style="yellow") for w in s.warnings]
    parts += [Text(f"warning: {w}", style="yellow") for w in report.warnings]
    if not report.deployments:
        parts.append(Text("no target Deployment found", style="yellow"))
    return Group(*parts)


def _details(s: TargetStatus, width: int) -> list[str]:
    indent = "    "
    notes: list[str] = []
    if s.targets:
        notes.append("targets: " + ", ".join(_target_text(*x) for x in s.targets))
    if s.last_run is not None:
        notes.append(f"last run: {_when(s.last_run)}, recommended {s.recommendation}")
    if s.decision is not None:
        notes.append(f"decision: → {s.decision.desired_replicas}: {s.decision.reason} "
                     f"({s.decision.message})")
    if s.held_until is not None:
        notes.append(f"held until: {_when(s.held_until)}")
    if s.last_scale is not None:
        notes.append(f"last scale: {s.last_scale.from_replicas} → {s.last_scale.to_replicas} "
                     f"at {_when(s.last_scale.at)}"
                     + (f": {s.last_scale.why}" if s.last_scale.why else ""))
    elif s.last_written is not None:
        notes.append(f"last scale: to {s.last_written} (time no longer in the history)")
    if s.last_event is not None:
        e = s.last_event
        notes.append(f"last event: {e.type} {e.reason} {_when(e.at)}: {e.message}")
    lines: list[str] = []
    for note in notes:
        for i, part in enumerate(columns.wrap(note, width - len(indent) - 2)):
            lines.append(indent + ("" if i == 0 else "  ") + part)
    return lines


def to_dict(report: StatusReport) -> dict[str, Any]:
    return {"schemaVersion": SCHEMA_VERSION, "namespace": report.namespace,
            "time": _when(report.time), "exitCode": int(report.exit_code),
            "deployments": [_status_dict(s) for s in report.deployments],
            "warnings": report.warnings}


def _status_dict(s: TargetStatus) -> dict[str, Any]:
    d = s.decision
    scale = s.last_scale
    event = s.last_event
    return {
        "name": s.deployment, "namespace": s.namespace or None, "error": s.error,
        "targets": [{"metric": n, "type": k, "target": v} for n, k, v in s.targets],
        "minReplicas": s.spec.min_replicas if s.spec else None,
        "maxReplicas": s.spec.max_replicas if s.spec else None,
        "replicas": s.replicas, "readyReplicas": s.ready_replicas, "paused": s.paused,
        "lastRun": _when(s.last_run) or None, "recommendation": s.recommendation,
        "lastDecision": None if d is None else {
            "desiredReplicas": d.desired_replicas, "reason": d.reason, "message": d.message,
            "limits": list(d.limits)},
        "heldUntil": _when(s.held_until) or None,
        "lastScale": None if scale is None else {
            "time": _when(scale.at), "from": scale.from_replicas, "to": scale.to_replicas,
            "why": scale.why},
        "lastWritten": s.last_written,
        "lastEvent": None if event is None else {
            "time": _when(event.at) or None, "type": event.type, "reason": event.reason,
            "message": event.message},
        "warnings": s.warnings,
    }
