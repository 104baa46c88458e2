"""A property test of the whole pass: random sequences of faults (Prometheus down, empty or NaN;
API conflicts and errors; readings up and down) through repeated checks never take a Deployment
outside [min, max] and never shrink it on data that could not be read."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devtrip_scale.config import Settings
from devtrip_scale.errors import KubeError
from devtrip_scale.ports import MetricResult
from devtrip_scale.reconcile import run_check
from tests.conftest import NOW
from tests.fakes import FakeDeployments, MemoryHistory, StaticSource

MIN, MAX = 2, 8
SETTINGS = Settings.model_validate({
    "namespace": "devtrip",
    "targets": [{"deployment": "api"}],
    "scaling": {"minReplicas": MIN, "maxReplicas": MAX,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
    "metrics": [
        {"name": "users", "query": "u", "target": {"type": "AverageValue", "value": 100}},
        {"name": "cpu", "preset": "cpu_utilization",
         "target": {"type": "Utilization", "value": 70}},
    ],
})

faults = st.sampled_from(["ok", "ok", "ok", "prometheus-down", "empty", "nan", "one-missing",
                          "conflict", "api-error"])
step = st.tuples(faults, st.floats(0, 2000), st.floats(0, 400), st.integers(5, 120))


def source_for(fault: str, users: float, cpu: float) -> StaticSource:
    if fault == "prometheus-down":
        down = "cannot connect to Prometheus at http://prometheus:9090"
        return StaticSource({"users": MetricResult("users", error=down),
                             "cpu": MetricResult("cpu", error=down)})
    if fault == "empty":
        return StaticSource({"users": MetricResult("users", error="no series"),
                             "cpu": MetricResult("cpu", error="no series")})
    if fault == "nan":
        return StaticSource({"users": MetricResult("users", unusable={"api": "NaN"}),
                             "cpu": MetricResult("cpu", unusable={"api": "NaN"})})
    if fault == "one-missing":
        return StaticSource({"users": MetricResult("users", values={"api": users}),
                             "cpu": MetricResult("cpu", unusable={"api": "+Inf"})})
    return StaticSource({"users": MetricResult("users", values={"api": users}),
                         "cpu": MetricResult("cpu", values={"api": cpu})})


@settings(max_examples=150, deadline=None)
@given(st.integers(MIN, MAX), st.lists(step, min_size=1, max_size=25))
def test_random_faults_never_leave_range_nor_shrink_on_missing_data(
        start: int, steps: list[tuple[str, float, float, int]]) -> None:
    kube = FakeDeployments({"api": start})
    history = MemoryHistory()
    at = NOW
    for fault, users, cpu, gap in steps:
        at += timedelta(seconds=gap)
        kube.conflicts = 1 if fault == "conflict" else 0
        kube.fail = {"api": KubeError("HTTP 500")} if fault == "api-error" else {}
        before = kube.replicas["api"]
        report = run_check(SETTINGS, source_for(fault, users, cpu), kube, history, at)
        after = kube.replicas["api"]
        assert MIN <= after <= MAX
        if fault in ("prometheus-down", "empty", "nan", "one-missing"):
            assert after >= before, (fault, before, after)
        if fault == "api-error":
            assert after == before
        if fault in ("prometheus-down", "empty"):
            assert report.exit_code == 3
