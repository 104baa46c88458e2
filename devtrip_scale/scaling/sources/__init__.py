"""Metric sources: where readings come from, and the router that asks them all at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from devtrip_scale.scaling.ports import MetricQuery, MetricResult, MetricsSource


class RoutedSource:
    """Sends PromQL metrics to Prometheus and URL metrics to the JSON endpoint reader.

    The queries are independent, so they run at the same time, one thread each, under one
    deadline for all: a Prometheus that accepts connections and never answers costs one timeout,
    not one per metric. A query still unanswered at the deadline is a failed metric.
    """

    def __init__(self, prometheus: MetricsSource, http: MetricsSource, *,
                 deadline_seconds: float) -> None:
        self._prometheus = prometheus
        self._http = http
        self._deadline = deadline_seconds

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        return fetch_concurrently(queries, self._one, self._deadline)

    def _one(self, query: MetricQuery) -> MetricResult:
        source = self._prometheus if query.url is None else self._http
        return source.fetch([query])[0]

    def close(self) -> None:
        self._prometheus.close()
        self._http.close()


def fetch_concurrently(queries: Sequence[MetricQuery],
                       fetch_one: Callable[[MetricQuery], MetricResult],
                       deadline_seconds: float) -> list[MetricResult]:
    """Each query in a daemon thread; what has not answered by the deadline is an error.

    Daemon threads, not a pool: a server that trickles bytes can keep a request alive past its
    socket timeouts, and such a thread must neither hold up the run nor the process's exit.
    """
    answers: dict[int, MetricResult] = {}

    def work(i: int, query: MetricQuery) -> None:
        try:
            answers[i] = fetch_one(query)
        except Exception as e:   # an adapter bug must cost one metric, not the pass
            answers[i] = MetricResult(query.name, error=f"internal error reading the metric: "
                                                        f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i, q), daemon=True,
                                name=f"devscale-metric-{q.name}") for i, q in enumerate(queries)]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline_seconds
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    done = dict(answers)   # a late answer after this point is ignored
    return [done.get(i) or MetricResult(
        q.name, error=f"no answer within the run's deadline of {deadline_seconds:g}s")
        for i, q in enumerate(queries)]


def fetch_in_background(source: MetricsSource, queries: Sequence[MetricQuery]
                        ) -> Callable[[], list[MetricResult]]:
    """Start `source.fetch(queries)` in a daemon thread; the returned call waits for its
    answer (and raises what the fetch raised). A pass asks Prometheus while it reads the
    cluster: the two do not depend on each other, so the slower one bounds the wait."""
    outcome: list[list[MetricResult] | BaseException] = []

    def work() -> None:
        try:
            outcome.append(source.fetch(queries))
        except BaseException as e:   # handed to the waiter, raised there
            outcome.append(e)

    thread = threading.Thread(target=work, daemon=True, name="devscale-metrics")
    thread.start()

    def wait() -> list[MetricResult]:
        thread.join()
        answer = outcome[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return wait
