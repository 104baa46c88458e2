"""RoutedSource: every metric asked at once under one deadline, against real sockets on loopback —
a Prometheus that accepts and never answers, one that trickles bytes past every socket timeout —
plus the routing of PromQL and URL metrics and an adapter bug that costs one metric only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from devtrip_scale.scaling.ports import MetricQuery, MetricResult
from devtrip_scale.scaling.sources import RoutedSource, fetch_concurrently
from devtrip_scale.scaling.sources.http_json import HttpJsonSource
from devtrip_scale.scaling.sources.prometheus import PrometheusSource

FIVE = [MetricQuery(name, f"sum by (deployment) ({name})")
        for name in ("cpu", "memory", "users", "rps", "p95")]


def _serve(handle: object) -> Iterator[str]:
    """A TCP server on loopback whose connections are handed to `handle` in a thread each."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture
def hung_prometheus() -> Iterator[str]:
    """Accepts every connection and never answers."""
    yield from _serve(lambda conn, stop: stop.wait())


@pytest.fixture
def trickling_prometheus() -> Iterator[str]:
    """Answers one header byte every 0.2 s forever: no socket read ever times out."""
    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.2):
            try:
                conn.sendall(b"X-Slow: y\r\n")
            except OSError:
                return
    yield from _serve(trickle)


def routed(url: str, timeout: float) -> RoutedSource:
    return RoutedSource(PrometheusSource(url, timeout=timeout), HttpJsonSource(timeout=timeout),
                        deadline_seconds=timeout + 1)


def test_a_hung_prometheus_costs_one_timeout_not_one_per_metric(hung_prometheus: str) -> None:
    source = routed(hung_prometheus, timeout=2)
    start = time.monotonic()
    results = source.fetch(FIVE)
    took = time.monotonic() - start
    source.close()
    assert [r.name for r in results] == [q.name for q in FIVE]
    assert all(r.error == f"Prometheus at {hung_prometheus} did not answer within 2s"
               for r in results), results
    assert 2 <= took < 3, took      # one by one it was 5 × 2 s


def test_the_deadline_bounds_a_server_that_trickles_past_every_socket_timeout(
        trickling_prometheus: str) -> None:
    source = routed(trickling_prometheus, timeout=1)
    start = time.monotonic()
    [result] = source.fetch(FIVE[:1])
    took = time.monotonic() - start
    source.close()
    assert result.error == "no answer within the run's deadline of 2s"
    assert took < 2.5, took


def test_routes_promql_and_url_metrics_and_keeps_their_order(hung_prometheus: str) -> None:
    asked: list[str] = []

    class Recording:
        def __init__(self, kind: str) -> None:
            self.kind = kind

        def fetch(self, queries: list[MetricQuery]) -> list[MetricResult]:
            asked.extend(f"{self.kind}:{q.name}" for q in queries)
            return [MetricResult(q.name, shared=1.0) for q in queries]

        def close(self) -> None:
            pass

    source = RoutedSource(Recording("prometheus"), Recording("http"), deadline_seconds=5)
    queries = [MetricQuery("a", "up"), MetricQuery("b", url="http://q/jobs", field="n"),
               MetricQuery("c", "up")]
    assert [r.name for r in source.fetch(queries)] == ["a", "b", "c"]
    assert sorted(asked) == ["http:b", "prometheus:a", "prometheus:c"]


def test_an_adapter_bug_costs_that_metric_only() -> None:
    def fetch_one(q: MetricQuery) -> MetricResult:
        if q.name == "memory":
            raise KeyError("value")
        return MetricResult(q.name, shared=2.0)

    results = fetch_concurrently(FIVE, fetch_one, deadline_seconds=5)
    assert [r.shared for r in results] == [2.0, None, 2.0, 2.0, 2.0]
    assert results[1].error == "internal error reading the metric: KeyError: 'value'"
