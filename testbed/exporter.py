"""A synthetic exporter the tests control: cAdvisor-, kube-state-metrics- and app-shaped series.

Counters grow at the set rate from the moment a Deployment's load is set, so `rate()` in
Prometheus reads exactly the per-pod rate the test asked for.

A load is a demand: the values hold at `pods` pods. Told which pods are Ready (`set_pods`, as
the sandbox does from the cluster), the exporter spreads that same demand over them — twice the
pods, half the CPU, memory, users, requests and latency per pod — as a real service behaves, and
its counters keep growing without a reset as the pods come and go.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from testbed.net import free_port

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class DeploymentLoad:
    """The load of one Deployment's pods, as the test set it."""

    namespace: str
    deployment: str
    pods: int = 2
    cpu_percent: float | None = None
    cpu_request_cores: float = 0.5
    memory_percent: float | None = None
    memory_request_bytes: float = 256 * 2**20
    rps: float | None = None              # requests per second, all pods together
    p95_seconds: float | None = None
    active_users: float | None = None
    since: float = field(default_factory=time.time)
    ready: list[str] | None = None   # the Ready pods' names when the cluster is followed ([]:
                                     # none yet); None: `pods` pods of made-up names
    counters: dict[tuple[str, ...], float] = field(default_factory=dict)   # per series

    def pod_names(self) -> list[str]:
        if self.ready is not None:
            return self.ready
        return [f"{self.deployment}-5d8f9c7b6{i}-x{i:04d}"[: 253] for i in range(self.pods)]

    def spread(self) -> float:
        """How much of the demand stated at `pods` pods each serving pod carries, relative to
        one of those `pods`: 1 until the Ready pods are known, then pods / Ready pods."""
        if self.ready is None or not self.ready:
            return 1.0
        return self.pods / len(self.ready)


class SyntheticExporter:
    """Serves the current synthetic series on a loopback port (scraped by Prometheus)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: dict[tuple[str, str], DeploymentLoad] = {}
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.port = free_port()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        self._server, self._thread = start_http_server(self.port, "127.0.0.1", registry)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_load(self, namespace: str, deployment: str, **values: Any) -> DeploymentLoad:
        """Replace a Deployment's load; counters restart at 0 with the new rates."""
        load = DeploymentLoad(namespace, deployment, **values)
        with self._lock:
            self._loads[(namespace, deployment)] = load
        return load

    def set_pods(self, namespace: str, deployment: str, ready: list[str]) -> None:
        """The Ready pods of a Deployment whose load is set: its demand is spread over them
        from now on (the series of pods that left stop; a new pod's counters start at 0)."""
        with self._lock:
            load = self._loads.get((namespace, deployment))
            if load is not None:
                self._accrue(load, time.time())
                load.ready = sorted(ready)

    def loaded(self, namespace: str) -> list[str]:
        """The Deployments of `namespace` whose load is set."""
        with self._lock:
            return [d for (ns, d) in self._loads if ns == namespace]

    def set_gauge(self, name: str, value: float | None, **labels: str) -> None:
        """Expose (or with None, withdraw) one gauge series, NaN and ±Inf included."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if value is None:
                self._gauges.pop(key, None)
            else:
                self._gauges[key] = value

    @staticmethod
    def _accrue(load: DeploymentLoad, now: float) -> None:
        """Grow each counter of each serving pod by its rate since the last time (the rates of
        the pods serving then): a pod's counters only ever grow while it serves."""
        last = load.counters.get(("", "at"), load.since)
        elapsed = max(now - last, 0.0)
        spread = load.spread()
        rates: list[tuple[tuple[str, ...], float]] = []
        for pod in load.pod_names():
            if load.cpu_percent is not None:
                rates.append(((pod, "cpu"),
                              load.cpu_request_cores * load.cpu_percent / 100 * spread))
            if load.rps is not None:
                rates.append(((pod, "http"), load.rps / load.pods * spread))
            if load.p95_seconds is not None:
                per_pod_rate = (load.rps or 10.0) / load.pods * spread
                p95 = _servable(load.p95_seconds * spread)
                rates += [((pod, "le", le), fraction * per_pod_rate)
                          for le, fraction in _buckets_for_p95(p95)]
                rates.append(((pod, "sum"), per_pod_rate * p95))
        grown = {key: load.counters.get(key, 0.0) + rate * elapsed for key, rate in rates}
        grown[("", "at")] = now
        load.counters = grown

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        with self._lock:
            loads = list(self._loads.values())
            gauges = dict(self._gauges)
        cpu = CounterMetricFamily("container_cpu_usage_seconds_total", "CPU seconds",
                                  labels=["namespace", "pod", "container"])
        mem = GaugeMetricFamily("container_memory_working_set_bytes", "working set",
                                labels=["namespace", "pod", "container"])
        req = GaugeMetricFamily("kube_pod_container_resource_requests", "requests",
                                labels=["namespace", "pod", "container", "resource", "unit"])
        http = CounterMetricFamily("http_requests", "requests",
                                   labels=["namespace", "pod"])
        latency = HistogramMetricFamily("http_request_duration_seconds", "latency",
                                        labels=["namespace", "pod"])
        users = GaugeMetricFamily("devtrip_active_users", "active users of one pod",
                                  labels=["namespace", "pod"])
        with self._lock:
            for load in loads:
                self._accrue(load, now)
                totals = dict(load.counters)
                spread = load.spread()
                for pod in load.pod_names():
                    ns = load.namespace
                    req.add_metric([ns, pod, "app", "cpu", "core"], load.cpu_request_cores)
                    req.add_metric([ns, pod, "app", "memory", "byte"],
                                   load.memory_request_bytes)
                    if load.cpu_percent is not None:
                        cpu.add_metric([ns, pod, "app"], totals[(pod, "cpu")])
                    if load.memory_percent is not None:
                        mem.add_metric([ns, pod, "app"], load.memory_request_bytes
                                       * load.memory_percent / 100 * spread)
                    if load.active_users is not None:
                        users.add_metric([ns, pod], load.active_users / load.pods * spread)
                    if load.rps is not None:
                        http.add_metric([ns, pod], totals[(pod, "http")])
                    if load.p95_seconds is not None:
                        buckets = [(le, totals[(pod, "le", le)])
                                   for le, _ in _buckets_for_p95(_servable(load.p95_seconds
                                                                           * spread))]
                        latency.add_metric([ns, pod], buckets,
                                           sum_value=totals[(pod, "sum")])
        yield from (cpu, mem, req, http, latency, users)
        by_name: dict[str, GaugeMetricFamily] = {}
        for (name, labels), value in gauges.items():
            label_names = [k for k, _ in labels]
            family = by_name.setdefault(name, GaugeMetricFamily(name, "synthetic",
                                                                labels=label_names))
            family.add_metric([v for _, v in labels], value)
        yield from by_name.values()


# A Deployment's pods are named <deployment>-<pod-template-hash>-<5 characters> (as the presets'
# PromQL reads them).
_POD_NAME = re.compile(r"(.+)-[a-z0-9]+-[a-z0-9]{5}")


def ready_pods(pods: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per Deployment, the names of its Ready pods that are not being deleted, from a pod
    list as the API server returns it (JSON)."""
    out: dict[str, list[str]] = {}
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status", {})
        found = _POD_NAME.fullmatch(meta["name"])
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions", []))
        if found and ready and not meta.get("deletionTimestamp"):
            out.setdefault(found.group(1), []).append(meta["name"])
    return out


class FollowReadyPods:
    """Keeps the exporter's pods of each loaded Deployment of a namespace equal to its Ready
    pods, read every `every` seconds by `list_pods` (the namespace's pods, as the API's JSON):
    the load then follows the replicas as a real service's does."""

    def __init__(self, exporter: SyntheticExporter, namespace: str,
                 list_pods: Callable[[], list[dict[str, Any]]], every: float = 1.0,
                 passing: tuple[type[Exception], ...] = (OSError,)) -> None:
        """`passing`: the errors of `list_pods` that only skip a round (the API server busy)."""
        self._exporter, self._namespace, self._list = exporter, namespace, list_pods
        self._every, self._passing = every, passing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow-ready-pods",
                                        daemon=True)

    def start(self) -> FollowReadyPods:
        self.sync()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sync(self) -> None:
        """One round: read the pods, tell the exporter."""
        ready = ready_pods(self._list())
        for deployment in self._exporter.loaded(self._namespace):
            self._exporter.set_pods(self._namespace, deployment, ready.get(deployment, []))

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.sync()
            except self._passing:
                continue


def _servable(p95: float) -> float:
    """`p95` moved just inside its bucket when the histogram cannot express it exactly (too
    close to a bucket's upper bound), and within the buckets."""
    p95 = min(max(p95, 0.001), LATENCY_BUCKETS[-1] * 0.95)
    bounds = [0.0, *LATENCY_BUCKETS]
    for lower, upper in pairwise(bounds):
        if lower < p95 <= upper:
            return min(p95, lower + 0.95 * (upper - lower))
    return p95


def _buckets_for_p95(p95: float) -> list[tuple[str, float]]:
    """Cumulative bucket fractions whose histogram_quantile(0.95, …) is exactly `p95`.

    A fraction `a` of requests sits at or below the bucket's lower bound L and the rest inside
    (L, U]; linear interpolation gives L + (U - L)(0.95 - a)/(1 - a) = p95.
    """
    bounds = [0.0, *LATENCY_BUCKETS]
    for lower, upper in pairwise(bounds):
        if lower < p95 <= upper:
            r = (p95 - lower) / (upper - lower)
            if r > 0.95:
                raise ValueError(f"p95 {p95} is too close to a bucket bound")
            below = (0.95 - r) / (1 - r)
            return [(_le(b), below if b <= lower else 1.0) for b in LATENCY_BUCKETS] + [
                ("+Inf", 1.0)]
    raise ValueError(f"p95 {p95} is beyond the largest bucket")


def _le(bound: float) -> str:
    return repr(bound) if not math.isinf(bound) else "+Inf"
