"""CachingSource: a reading is reused within the cache time, asked again after, and a failure is
never cached."""

from __future__ import annotations

from devtrip_scale.scaling.ports import MetricQuery, MetricResult
from devtrip_scale.scaling.sources.cache import CachingSource
from tests.fakes import StaticSource

CPU = MetricQuery("cpu", "q1")
JOBS = MetricQuery("jobs", "q2")


def test_reuses_within_the_cache_time_and_never_caches_failures() -> None:
    inner = StaticSource({"cpu": MetricResult("cpu", values={"api": 1.0}),
                          "jobs": MetricResult("jobs", error="down")})
    now = [0.0]
    cache = CachingSource(inner, 30, clock=lambda: now[0])
    cache.fetch([CPU, JOBS])
    now[0] = 29.0
    results = cache.fetch([CPU, JOBS])
    assert [q.name for q in inner.queries] == ["cpu", "jobs", "jobs"]   # jobs failed: asked again
    assert results[0].values == {"api": 1.0} and results[1].error == "down"
    now[0] = 30.0
    cache.fetch([CPU])
    assert [q.name for q in inner.queries][-1] == "cpu"                  # expired: asked again
