"""A synthetic exporter the tests control: cAdvisor-, kube-state-metrics- and app-shaped series.

Counters grow at the set rate from the moment a Deployment's load is set, so `rate()` in
Prometheus reads exactly the per-pod rate the test asked for.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
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

    def pod_names(self) -> list[str]:
        return [f"{self.deployment}-5d8f9c7b6{i}-x{i:04d}"[: 253] for i in range(self.pods)]


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

    def set_gauge(self, name: str, value: float | None, **labels: str) -> None:
        """Expose (or with None, withdraw) one gauge series, NaN and ±Inf included."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if value is None:
                self._gauges.pop(key, None)
            else:
                self._gauges[key] = value

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
        for load in loads:
            elapsed = max(now - load.since, 0.0)
            for pod in load.pod_names():
                ns = load.namespace
                req.add_metric([ns, pod, "app", "cpu", "core"], load.cpu_request_cores)
                req.add_metric([ns, pod, "app", "memory", "byte"], load.memory_request_bytes)
                if load.cpu_percent is not None:
                    per_pod = load.cpu_request_cores * load.cpu_percent / 100
                    cpu.add_metric([ns, pod, "app"], per_pod * elapsed)
                if load.memory_percent is not None:
                    mem.add_metric([ns, pod, "app"],
                                   load.memory_request_bytes * load.memory_percent / 100)
                if load.active_users is not None:
                    users.add_metric([ns, pod], load.active_users / load.pods)
                if load.rps is not None:
                    http.add_metric([ns, pod], load.rps / load.pods * elapsed)
                if load.p95_seconds is not None:
                    per_pod_rate = (load.rps or 10.0) / load.pods
                    count = per_pod_rate * elapsed
                    buckets = [(le, fraction * count)
                               for le, fraction in _buckets_for_p95(load.p95_seconds)]
                    latency.add_metric([ns, pod], buckets, sum_value=count * load.p95_seconds)
        yield from (cpu, mem, req, http, latency, users)
        by_name: dict[str, GaugeMetricFamily] = {}
        for (name, labels), value in gauges.items():
            label_names = [k for k, _ in labels]
            family = by_name.setdefault(name, GaugeMetricFamily(name, "synthetic",
                                                                labels=label_names))
            family.add_metric([v for _, v in labels], value)
        yield from by_name.values()


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
