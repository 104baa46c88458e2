"""HttpJsonSource: a number read from an HTTP endpoint answering JSON, shared by every target."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from devtrip_scale.core.trace import Trace
from devtrip_scale.scaling.ports import MetricQuery, MetricResult


class HttpJsonSource:
    """GETs each metric's URL once per run and reads the number at its `field` (dotted path)."""

    def __init__(self, *, timeout: float, trace: Trace | None = None) -> None:
        import httpx

        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._timeout = timeout
        self._trace = trace or Trace()

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        return [self._get(q) for q in queries]

    def close(self) -> None:
        self._client.close()

    def _get(self, q: MetricQuery) -> MetricResult:
        import httpx

        url = str(q.url)
        try:
            with self._trace.span("http", f"{q.name}: GET {url}") as entry:
                response = self._client.get(url, headers={"Accept": "application/json"})
                entry.outcome = f"HTTP {response.status_code}"
        except httpx.TimeoutException:
            return MetricResult(q.name, error=f"{url} did not answer within {self._timeout:g}s")
        except httpx.HTTPError as e:
            return MetricResult(q.name, error=f"cannot reach {url}: {type(e).__name__}")
        if response.status_code != 200:
            return MetricResult(q.name, error=f"{url} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return MetricResult(q.name, error=f"{url} did not answer JSON")
        return read_field(q.name, body, q.field)


def read_field(name: str, body: Any, field: str | None) -> MetricResult:
    """The finite number at the dotted `field` of a JSON body, or why there is none."""
    value = body
    for part in field.split(".") if field else ():
        if not isinstance(value, dict) or part not in value:
            return MetricResult(name, error=f"the JSON answer has no field {field!r}")
        value = value[part]
    where = repr(field or "(body)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MetricResult(name, error=f"field {where} is not a number: {value!r}"[:200])
    if not math.isfinite(value):
        return MetricResult(name, error=f"field {where} is {value}")
    if value < 0:
        return MetricResult(name, error=f"field {where} is {value:g}: a negative reading is "
                            "not a load")
    return MetricResult(name, shared=float(value))
