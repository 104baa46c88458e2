"""PrometheusSource: one instant query per metric, each answer checked before it is a reading."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from devtrip_scale.core.errors import MetricsError
from devtrip_scale.core.trace import Trace
from devtrip_scale.scaling.ports import MetricQuery, MetricResult

# Prometheus answers a range query of more points per series with HTTP 400 (bad_data).
MAX_RANGE_POINTS = 10_000
# A series with this label, valued "pods", counts the pods behind its Deployment's reading.
SERIES_LABEL = "devscale_series"


class PrometheusSource:
    """Reads metrics from Prometheus's HTTP API through prometheus-api-client.

    Each query's result must carry one series per Deployment (label `deployment`); a single series
    without that label is shared by every target (a queue's depth, say). Empty results, NaN and
    ±Inf are missing readings, never zero.
    """

    def __init__(self, url: str, *, timeout: float, token: str | None = None,
                 trace: Trace | None = None) -> None:
        # Imported here: keeps `devscale --help` and `config validate` fast.
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        headers = {"Authorization": f"Bearer {token}"} if token else None
        # One quick retry on connection errors only: a dead Prometheus must cost seconds, not
        # the library's default backoff storm. read=False re-raises a read timeout as one
        # (read=0 would wrap it in MaxRetryError, which requests reports as a connection error).
        retry = Retry(total=1, connect=1, read=False, status=0, other=0, backoff_factor=0.1)
        self._timeout = timeout
        self._url = url
        self._trace = trace or Trace()
        self._client = PrometheusConnect(url=url, headers=headers, retry=retry, timeout=timeout)

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        return [self._query(q) for q in queries]

    def close(self) -> None:
        self._client._session.close()

    def fetch_range(self, query: MetricQuery, start: datetime, end: datetime,
                    step_seconds: float) -> list[dict[str, Any]]:
        """A range query's matrix (for `simulate`); raises MetricsError naming the metric.

        Prometheus refuses more than 11,000 points per series in one query (a week at 30 s is
        20,160), so a longer range is asked for in consecutive windows on the same grid of
        steps, and each series' values are joined."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        span = timedelta(seconds=step_seconds * (MAX_RANGE_POINTS - 1))
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        window = start
        while window <= end:
            stop = min(window + span, end)
            try:
                with self._trace.span("promql", f"range {query.name}: {query.promql}"):
                    result = self._client.custom_query_range(
                        query.promql, start_time=window, end_time=stop,
                        step=f"{step_seconds:g}", params={"timeout": f"{self._timeout:g}"})
            except (PrometheusApiClientException, requests.RequestException, ValueError) as e:
                raise MetricsError(
                    f"range query of metric {query.name} failed: {_short(e)}") from None
            if not isinstance(result, list):
                raise MetricsError(f"range query of metric {query.name} returned no matrix")
            for item in result:
                key = tuple(sorted(item.get("metric", {}).items()))
                series.setdefault(key, {**item, "values": []})["values"].extend(
                    item.get("values", []))
            window = stop + timedelta(seconds=step_seconds)
        return list(series.values())

    def _query(self, q: MetricQuery) -> MetricResult:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        params = {"timeout": f"{self._timeout:g}"}  # float seconds: Prometheus rejects "0.5s"
        try:
            with self._trace.span("promql", f"{q.name}: {q.promql}") as entry:
                raw = self._client.custom_query(q.promql, params=params)
                entry.outcome = f"{len(raw) if isinstance(raw, list) else 0} series"
        except PrometheusApiClientException as e:
            return MetricResult(q.name, error=f"Prometheus refused the query: {_short(e)}")
        except requests.Timeout:
            return MetricResult(
                q.name, error=f"Prometheus at {self._url} did not answer within {self._timeout:g}s"
            )
        except requests.ConnectionError:
            return MetricResult(q.name, error=f"cannot connect to Prometheus at {self._url}")
        except (requests.RequestException, ValueError) as e:
            return MetricResult(q.name, error=f"unusable answer from Prometheus: {_short(e)}")
        result = parse_result(q.name, raw, q.promql)
        with self._trace.span("reading", f"{q.name}: {_summary(result)}"):
            pass
        return result


def parse_result(name: str, raw: Any, promql: str = "") -> MetricResult:
    """Turn `data.result` of an instant query into readings, checking its shape and values.

    One series per Deployment (label `deployment`); a single series without that label stands
    for every target only when it is the whole result. NaN and ±Inf are missing readings, a
    negative value is an invalid one; neither is ever zero. A series labelled
    `devscale_series="pods"` beside a Deployment's value is the count of pods behind it (the
    presets add one with `or`): a whole number of at least 1, or it is left out.
    """
    if _is_scalar(raw):
        return _shared(name, raw[1])
    if not isinstance(raw, list):
        return MetricResult(name, error="the query returned neither a vector nor a scalar")
    if not raw:
        return MetricResult(name, error="the query returned no series (absent or stale data)")
    values: dict[str, float] = {}
    unusable: dict[str, str] = {}
    invalid: dict[str, str] = {}
    unlabelled: list[object] = []
    pods: dict[str, int] = {}
    for series in raw:
        labels = series.get("metric", {}) if isinstance(series, dict) else {}
        sample = series.get("value") if isinstance(series, dict) else None
        if not isinstance(sample, list) or len(sample) != 2:
            return MetricResult(name, error="the query returned a series without a value")
        deployment = labels.get("deployment")
        kind = labels.get(SERIES_LABEL)
        if kind is not None:
            if kind != "pods":
                return MetricResult(name, error=f"unknown series {SERIES_LABEL}={kind!r}; "
                                    "only \"pods\" (the count of pods behind a reading) is known")
            if deployment in pods:
                return MetricResult(name, error=f"several pod counts for deployment "
                                    f"{deployment!r}; count by (deployment)")
            count = finite_number(sample[1])
            if deployment is not None and count is not None and count >= 1 \
                    and count == int(count):
                pods[deployment] = int(count)
            continue
        if deployment is None:
            unlabelled.append(sample[1])
            continue
        if deployment in values or deployment in unusable or deployment in invalid:
            return MetricResult(name, error=f"several series for deployment {deployment!r}; "
                                "aggregate with sum by (deployment)")
        value = finite_number(sample[1])
        if value is None:
            unusable[deployment] = f"the reading is {sample[1]}"
        elif value < 0:
            invalid[deployment] = f"negative reading {value:g} is not a load"
        else:
            values[deployment] = value
    if unlabelled and (values or unusable or invalid):
        labelled = len(values) + len(unusable) + len(invalid)
        return MetricResult(name, error=(
            f"the result mixes {labelled} series with a `deployment` label and "
            f"{len(unlabelled)} without one (Prometheus drops an empty label): a series without "
            "the label may stand for every target only when it is the whole result; "
            f"query: {_short_query(promql)}"))
    if len(unlabelled) > 1:
        return MetricResult(name, error="several series without a `deployment` label; "
                            "aggregate with sum by (deployment)")
    if unlabelled:
        return _shared(name, unlabelled[0])
    return MetricResult(name, values=values, unusable=unusable, invalid=invalid,
                        pods={d: n for d, n in pods.items() if d in values})


def _shared(name: str, text: object) -> MetricResult:
    """One value for every target (a scalar, or the whole result's one unlabelled series)."""
    value = finite_number(text)
    if value is None:
        return MetricResult(name, error=f"the reading is {text}, not a number")
    if value < 0:
        return MetricResult(name, error=f"negative reading {value:g} is not a load")
    return MetricResult(name, shared=value)


def _short_query(promql: str, most: int = 200) -> str:
    flat = " ".join(promql.split())
    return flat if len(flat) <= most else flat[:most - 1] + "…"


def _is_scalar(raw: Any) -> bool:
    return (isinstance(raw, list) and len(raw) == 2
            and isinstance(raw[0], int | float) and isinstance(raw[1], str))


def finite_number(text: object) -> float | None:
    """A sample value as Prometheus sends it ("1.5", "NaN", "+Inf"): the float, or None."""
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _summary(result: MetricResult, most: int = 20) -> str:
    parts = [f"{k}={v:g}" + (f" ({result.pods[k]} pods)" if k in result.pods else "")
             for k, v in list(result.values.items())[:most]]
    parts += [f"{k}: {why}" for k, why in list(result.unusable.items())[:most]]
    if result.shared is not None:
        parts.append(f"(all)={result.shared:g}")
    more = len(result.values) + len(result.unusable) - most
    return ", ".join(parts) + (f", … {more} more" if more > 0 else "") if parts else (
        result.error or "nothing")


def _short(e: BaseException) -> str:
    """One line of an error; for an HTTP error from the client, the status and Prometheus' own
    `error` text rather than the raw JSON body in a byte-string repr."""
    import ast
    import json
    import re

    text = str(e).strip()
    if m := re.fullmatch(r"HTTP Status Code (\d+) \((b?['\"].*['\"])\)", text, re.DOTALL):
        status, body = m.group(1), m.group(2)
        try:
            raw = ast.literal_eval(body)
            decoded = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        except (ValueError, SyntaxError):
            decoded = body
        try:
            answer = json.loads(decoded)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("error"):
            kind = f"{answer['errorType']}: " if answer.get("errorType") else ""
            text = f"HTTP {status}: {kind}{answer['error']}"
        else:  # not Prometheus' JSON (a proxy's page): its first line, as text
            first = decoded.strip().splitlines()
            text = f"HTTP {status}" + (f": {first[0]}" if first else "")
    lines = text.splitlines()
    return (lines[0] if lines else type(e).__name__)[:300]
