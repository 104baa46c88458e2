"""Metric sources: where readings come from, and the router between them."""

from __future__ import annotations

from collections.abc import Sequence

from devtrip_scale.ports import MetricQuery, MetricResult, MetricsSource


class RoutedSource:
    """Sends PromQL metrics to Prometheus and URL metrics to the JSON endpoint reader, in order."""

    def __init__(self, prometheus: MetricsSource, http: MetricsSource) -> None:
        self._prometheus = prometheus
        self._http = http

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        promql = [q for q in queries if q.url is None]
        urls = [q for q in queries if q.url is not None]
        by_name = {r.name: r for r in self._prometheus.fetch(promql)} if promql else {}
        by_name.update({r.name: r for r in self._http.fetch(urls)} if urls else {})
        return [by_name[q.name] for q in queries]

    def close(self) -> None:
        self._prometheus.close()
        self._http.close()
