"""`devscale run`: the check on an interval, leader-elected by the Lease, with /healthz and
/metrics; only the leader scales, followers stay ready, SIGTERM stops it and frees the Lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devtrip_scale.core.errors import DevscaleError, LeaseHeld
from devtrip_scale.core.httpserve import METRICS, TEXT, Reply, ThreadedServer, serve_in_thread
from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.report import CheckReport


@dataclass
class LoopState:
    """What the endpoints report; written by the loop, read by the HTTP thread."""

    leader: bool = False
    last_tick: float = field(default_factory=time.monotonic)
    last_success: float | None = None


class Telemetry:
    """The loop's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["namespace", "deployment"]
        self.desired = Gauge("devscale_desired_replicas", "Replicas devscale decided",
                             labels, registry=self.registry)
        self.current = Gauge("devscale_current_replicas", "Replicas before the decision",
                             labels, registry=self.registry)
        self.reading = Gauge("devscale_metric_reading", "Each metric's last reading",
                             [*labels, "metric"], registry=self.registry)
        self.decisions = Counter("devscale_decisions", "Decisions by action",
                                 [*labels, "action", "reason"], registry=self.registry)
        self.errors = Counter("devscale_errors", "Failed passes and Deployments, by kind",
                              ["kind"], registry=self.registry)
        self.last_success = Gauge("devscale_last_success_timestamp_seconds",
                                  "When a pass last completed without error",
                                  registry=self.registry)
        self.leader = Gauge("devscale_leader", "1 while this process holds the Lease",
                            registry=self.registry)
        self.exhausted = Gauge("devscale_capacity_exhausted",
                               "1 while a metric asks for more than maxReplicas", labels,
                               registry=self.registry)
        self.held = Gauge("devscale_scaling_held", "1 while replicas are held for missing "
                          "metrics", labels, registry=self.registry)

    def record(self, report: CheckReport) -> None:
        for r in report.results:
            ns = report.namespace_of(r)   # a fleet's: each Deployment's own
            if r.error is not None:
                self.errors.labels("deployment").inc()
            d = r.decision
            if d is None:
                continue
            self.desired.labels(ns, d.deployment).set(d.desired_replicas)
            self.current.labels(ns, d.deployment).set(d.current_replicas)
            self.decisions.labels(ns, d.deployment, d.action, d.reason).inc()
            self.exhausted.labels(ns, d.deployment).set(1 if d.capacity_exhausted else 0)
            self.held.labels(ns, d.deployment).set(1 if d.held else 0)
            for p in d.proposals:
                if p.reading is not None:
                    self.reading.labels(ns, d.deployment, p.name).set(p.reading)
        for _ in report.metric_errors:
            self.errors.labels("metrics").inc()
        if report.exit_code == 0:
            self.last_success.set(time.time())

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def serve(host: str, port: int, state: LoopState, telemetry: Telemetry, stale_after: float
          ) -> ThreadedServer:
    """/healthz (200 while the loop ticks, leader or not) and /metrics, on a daemon thread."""

    def healthz() -> Reply:
        alive = time.monotonic() - state.last_tick < stale_after
        role = "leader" if state.leader else "follower"
        return 200 if alive else 503, f"{'ok' if alive else 'stalled'} ({role})\n".encode(), TEXT

    def metrics() -> Reply:
        return 200, telemetry.exposition(), METRICS

    return serve_in_thread(host, port, {"/healthz": healthz, "/metrics": metrics})


def run_loop(settings: Settings, lock: Any, check: Callable[[], CheckReport], *,
             interval: float, stop: threading.Event, state: LoopState, telemetry: Telemetry,
             say: Callable[[str], None]) -> None:
    """Tick every `interval` until `stop`: hold or take the Lease, and check only as leader."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            if state.leader:
                lock.renew()
            else:
                lock.acquire()
                say(f"{datetime.now(UTC):%H:%M:%S} leading namespace {settings.namespace} "
                    f"as {lock.identity}")
            state.leader = True
        except LeaseHeld as e:
            if state.leader:
                say(f"lost the lead: {e}")
            state.leader = False
        except DevscaleError as e:
            telemetry.errors.labels("lease").inc()
            say(f"lease: {e}")
            state.leader = False
        telemetry.leader.set(1 if state.leader else 0)
        if state.leader:
            try:
                report = check()
                telemetry.record(report)
                changed = [r for r in report.results if r.applied]
                say(f"{datetime.now(UTC):%H:%M:%S} checked {len(report.results)} "
                    f"Deployment(s), scaled {len(changed)}, exit {int(report.exit_code)}")
            except DevscaleError as e:
                telemetry.errors.labels(type(e).__name__).inc()
                say(f"check failed: {e}")
        state.last_tick = time.monotonic()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
