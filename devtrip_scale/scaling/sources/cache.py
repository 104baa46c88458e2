"""CachingSource: reuse each metric's result for N seconds (for the in-cluster loop)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from devtrip_scale.scaling.ports import MetricQuery, MetricResult, MetricsSource


class CachingSource:
    """Wraps a source; a query asked again within `seconds` gets the earlier answer.

    Failed results are never cached: the next pass asks again.
    """

    def __init__(self, inner: MetricsSource, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._seconds = seconds
        self._clock = clock
        self._cache: dict[MetricQuery, tuple[float, MetricResult]] = {}

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        now = self._clock()
        results: dict[MetricQuery, MetricResult] = {}
        stale = []
        for q in queries:
            hit = self._cache.get(q)
            if hit is not None and now - hit[0] < self._seconds:
                results[q] = hit[1]
            else:
                stale.append(q)
        if stale:
            for q, result in zip(stale, self._inner.fetch(stale), strict=True):
                results[q] = result
                if result.error is None:
                    self._cache[q] = (now, result)
                else:
                    self._cache.pop(q, None)
        return [results[q] for q in queries]

    def close(self) -> None:
        self._inner.close()
