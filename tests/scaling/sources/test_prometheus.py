"""PrometheusSource: the shape checks on `data.result` (pure), and against a real Prometheus:
every preset and example query, a query Prometheus rejects, a Prometheus that is not there."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtrip_scale.scaling.config import load_config
from devtrip_scale.scaling.ports import MetricQuery
from devtrip_scale.scaling.presets import PRESETS, render
from devtrip_scale.scaling.reconcile import metric_queries
from devtrip_scale.scaling.sources.prometheus import PrometheusSource, parse_result
from testbed.exporter import SyntheticExporter
from testbed.net import free_port
from testbed.prometheus import Prometheus
from tests.conftest import ROOT, TEST_WINDOW, settle

SAMPLE = [1.7e9, "1"]


def series(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1.7e9, value]}


@pytest.mark.parametrize(
    ("raw", "values", "shared", "error"),
    [
        pytest.param([series("3", deployment="a"), series("4", deployment="b")],
                     {"a": 3.0, "b": 4.0}, None, None, id="one-series-per-deployment"),
        pytest.param([], {}, None, "no series", id="no-results"),
        pytest.param([series("5")], {}, 5.0, None, id="one-unlabelled-series-is-shared"),
        pytest.param([1.7e9, "3"], {}, 3.0, None, id="scalar"),
        pytest.param([1.7e9, "NaN"], {}, None, "not a number", id="scalar-nan"),
        pytest.param([series("1"), series("2")], {}, None, "several series without",
                     id="several-unlabelled"),
        pytest.param([series("1", deployment="a"), series("2", deployment="a")], {}, None,
                     "several series for deployment 'a'", id="duplicate-deployment"),
        pytest.param([{"metric": {"deployment": "a"}, "value": [1.7e9]}], {}, None,
                     "without a value", id="short-value-pair"),
        pytest.param({"resultType": "matrix"}, {}, None, "neither", id="not-a-list"),
        # Prometheus drops an empty label: one unlabelled series among labelled ones must not
        # lend its value to every target that has no series of its own
        pytest.param([series("3", deployment="a"), series("50")], {}, None,
                     "mixes 1 series with a `deployment` label and 1 without",
                     id="mixed-labelled-and-unlabelled"),
        pytest.param([series("NaN", deployment="a"), series("50")], {}, None,
                     "mixes", id="mixed-with-a-nan-labelled"),
        pytest.param([series("-4")], {}, None, "negative reading -4 is not a load",
                     id="negative-shared"),
        pytest.param([1.7e9, "-4"], {}, None, "negative reading -4", id="negative-scalar"),
        pytest.param([series("0")], {}, 0.0, None, id="zero-is-a-reading"),
    ],
)
def test_parse_result(raw: Any, values: dict[str, float], shared: float | None,
                      error: str | None) -> None:
    result = parse_result("m", raw)
    assert dict(result.values) == values
    assert result.shared == shared
    if error is None:
        assert result.error is None
    else:
        assert result.error is not None and error in result.error


@pytest.mark.parametrize("text", ["NaN", "+Inf", "-Inf"])
def test_nan_and_inf_are_missing_never_zero(text: str) -> None:
    result = parse_result("m", [series(text, deployment="a"), series("2", deployment="b")])
    assert result.reading_for("a") == (None, f"the reading is {text}")
    assert result.reading_for("b") == (2.0, None)
    assert result.reading_for("c")[0] is None


def test_a_negative_reading_is_invalid_for_its_deployment_only() -> None:
    result = parse_result("m", [series("-4", deployment="a"), series("2", deployment="b")])
    assert result.reading_for("a") == (None, "negative reading -4 is not a load")
    assert result.reading_for("b") == (2.0, None)
    assert dict(result.invalid) == {"a": "negative reading -4 is not a load"}


def test_the_pod_count_beside_a_reading() -> None:
    # the presets' `or label_replace(count by (deployment) (...), "devscale_series", "pods",
    # "", "")`: one more series per Deployment, the pods behind its value
    result = parse_result("m", [series("200", deployment="a"), series("3", deployment="b"),
                                series("2", deployment="a", devscale_series="pods"),
                                series("7", deployment="c", devscale_series="pods"),
                                series("0.5", deployment="b", devscale_series="pods")])
    assert result.error is None
    assert dict(result.values) == {"a": 200.0, "b": 3.0}
    assert dict(result.pods) == {"a": 2}    # c has no value; half a pod is no count


def test_an_unknown_series_kind_is_an_error() -> None:
    result = parse_result("m", [series("1", deployment="a"),
                                series("2", deployment="a", devscale_series="requests")])
    assert result.error is not None and "devscale_series='requests'" in result.error


def test_a_mixed_result_names_the_query() -> None:
    result = parse_result("m", [series("3", deployment="a"), series("50")],
                          'label_replace(q, "deployment", "$1", "pod", "(.*)-[^-]+")')
    assert result.error is not None
    assert result.error.endswith('query: label_replace(q, "deployment", "$1", "pod", '
                                 '"(.*)-[^-]+")')


@pytest.mark.integration
def test_every_preset_and_example_query_runs_on_real_prometheus(
        exporter: SyntheticExporter, prometheus: Prometheus) -> None:
    ns = "presets"
    exporter.set_load(ns, "api", pods=2, cpu_percent=90, memory_percent=40, rps=50,
                      p95_seconds=1.5, active_users=70)
    exporter.set_gauge("devtrip_queue_waiting_jobs", 4, namespace=ns, queue="jobs")
    settle()
    source = PrometheusSource(prometheus.url, timeout=5)
    queries = [MetricQuery(name, render(q, namespace=ns, window=TEST_WINDOW))
               for name, q in PRESETS.items()]
    for path in ("devtrip.yaml", "queue-workers.yaml"):
        settings = load_config(ROOT / "config" / path, env={"NAMESPACE": ns})
        queries += [MetricQuery(f"{path}:{q.name}", q.promql.replace("[2m]", f"[{TEST_WINDOW}]"))
                    for q in metric_queries(settings) if "preset" not in q.name]
    results = {r.name: r for r in source.fetch(queries)}
    source.close()
    assert all(r.error is None for r in results.values()), results
    # rate() over a 5 s window of 1 s scrapes: a busy machine's scrape jitter costs a few %
    assert results["cpu_utilization"].values["api"] == pytest.approx(90, rel=0.05)
    assert results["memory_utilization"].values["api"] == pytest.approx(40)
    assert results["http_requests_per_second"].values["api"] == pytest.approx(50, rel=0.05)
    assert results["http_p95_latency_seconds"].values["api"] == pytest.approx(1.5, rel=0.01)
    assert results["devtrip.yaml:active_users"].values["api"] == pytest.approx(70)
    # the pods behind each per-pod preset's value, from the same query
    for name in ("cpu_utilization", "memory_utilization", "http_requests_per_second"):
        assert dict(results[name].pods) == {"api": 2}, name
    assert dict(results["http_p95_latency_seconds"].pods) == {}
    assert results["queue-workers.yaml:waiting_jobs"].shared == 4


@pytest.mark.integration
def test_a_query_prometheus_rejects_is_reported(prometheus: Prometheus) -> None:
    source = PrometheusSource(prometheus.url, timeout=5)
    [result] = source.fetch([MetricQuery("bad", "sum by (deployment) (")])
    source.close()
    assert result.error is not None and "refused the query" in result.error
    assert "400" in result.error


@pytest.mark.integration
def test_prometheus_not_there_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    source = PrometheusSource(url, timeout=5)
    start = time.monotonic()
    [result] = source.fetch([MetricQuery("cpu", "up")])
    source.close()
    assert result.error == f"cannot connect to Prometheus at {url}"
    assert time.monotonic() - start < 3   # one quick retry, no backoff storm


@pytest.mark.integration
def test_a_range_longer_than_prometheus_allows_is_asked_in_windows(
        exporter: SyntheticExporter, prometheus: Prometheus,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A week at 30 s (20,160 points, over Prometheus' 11,000) is answered; and a range split
    into windows gives exactly the points one query gives, on the same grid, none twice."""
    from datetime import UTC, datetime, timedelta
    from itertools import pairwise

    from devtrip_scale.scaling.sources import prometheus as module

    exporter.set_gauge("devtrip_range_probe", 3, namespace="ranges")
    settle()
    query = MetricQuery("probe", 'devtrip_range_probe{namespace="ranges"}')
    source = PrometheusSource(prometheus.url, timeout=5)
    end = datetime.now(UTC).replace(microsecond=0)
    [week] = source.fetch_range(query, end - timedelta(days=7), end, 30)
    assert week["values"] and all(float(v) == 3 for _, v in week["values"])
    whole = source.fetch_range(query, end - timedelta(seconds=6), end, 1)
    monkeypatch.setattr(module, "MAX_RANGE_POINTS", 3)
    windows = source.fetch_range(query, end - timedelta(seconds=6), end, 1)
    source.close()
    [series] = whole
    stamps = [t for t, _ in series["values"]]
    assert len(stamps) >= 5 and all(b - a == 1 for a, b in pairwise(stamps))
    assert windows == whole          # three windows of 3 points: the same 1 s grid, none twice
