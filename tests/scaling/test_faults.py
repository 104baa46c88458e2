"""A property test of the whole pass: random sequences of faults (Prometheus down, empty or NaN;
negative readings; an unlabelled series among labelled ones; a Deployment someone scaled to 0;
pods not ready; API conflicts and errors; readings up and down; readings that still stand on the
pods of before a scale-up, the new pods Ready at once) through repeated checks never take a
Deployment outside [min, max], never wake one at 0 that min > 0 leaves alone, never shrink it on
data that could not be read or made no sense, and never scale it up twice on the same readings."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devtrip_scale.core.errors import KubeError
from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.ports import MetricResult
from devtrip_scale.scaling.reconcile import run_check
from devtrip_scale.scaling.sources.prometheus import parse_result
from tests.conftest import NOW
from tests.fakes import FakeDeployments, MemoryHistory, StaticSource

MAX = 8
UNREADABLE = ("prometheus-down", "empty", "nan", "one-missing", "negative", "mixed-labels")


def settings_for(low: int) -> Settings:
    return Settings.model_validate({
        "namespace": "devtrip",
        "targets": [{"deployment": "api"}],
        "scaling": {"minReplicas": low, "maxReplicas": MAX,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
        "metrics": [
            {"name": "users", "query": "u", "target": {"type": "AverageValue", "value": 100}},
            {"name": "cpu", "preset": "cpu_utilization",
             "target": {"type": "Utilization", "value": 70}},
        ],
    })


SETTINGS = {low: settings_for(low) for low in (0, 2)}
faults = st.sampled_from(["ok", "ok", "ok", "prometheus-down", "empty", "nan", "one-missing",
                          "negative", "mixed-labels", "scaled-to-zero", "conflict", "api-error",
                          "old-pods", "old-pods"])
step = st.tuples(faults, st.floats(0, 2000), st.floats(0, 400), st.integers(5, 120),
                 st.floats(0, 1))


def series(value: str, **labels: str) -> dict[str, object]:
    return {"metric": labels, "value": [1.7e9, value]}


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
    if fault == "negative":
        return StaticSource({"users": parse_result("users", [series(f"{-users - 1:g}",
                                                                    deployment="api")]),
                             "cpu": parse_result("cpu", [series(f"{-cpu - 1:g}")])})
    if fault == "mixed-labels":   # api's own series, and one that lost its label
        raw = [series(f"{users:g}", deployment="api"), series(f"{users * 9:g}")]
        return StaticSource({"users": parse_result("users", raw, "sum by (deployment) (u)"),
                             "cpu": parse_result("cpu", [series(f"{cpu:g}", deployment="web"),
                                                         series("1")])})
    return StaticSource({"users": MetricResult("users", values={"api": users}),
                         "cpu": MetricResult("cpu", values={"api": cpu})})


def old_pods_source(users: float, cpu: float, pods: int) -> StaticSource:
    """The readings of the step before, which `pods` pods stood behind."""
    behind = {"api": pods} if pods else {}
    return StaticSource({"users": MetricResult("users", values={"api": users}, pods=behind),
                         "cpu": MetricResult("cpu", values={"api": cpu}, pods=behind)})


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([0, 2]), st.integers(0, MAX), st.lists(step, min_size=1, max_size=25))
def test_random_faults_never_leave_range_nor_shrink_on_bad_data(
        low: int, start: int, steps: list[tuple[str, float, float, int, float]]) -> None:
    kube = FakeDeployments({"api": max(start, low)})
    history = MemoryHistory()
    at = NOW
    last: tuple[float, float, int, int] | None = None   # the last "ok" step, right before
    for fault, users, cpu, gap, ready_share in steps:
        at += timedelta(seconds=gap)
        kube.conflicts = 1 if fault == "conflict" else 0
        kube.fail = {"api": KubeError("HTTP 500")} if fault == "api-error" else {}
        if fault == "scaled-to-zero":
            kube.replicas["api"] = 0
        before = kube.replicas["api"]
        kube.ready["api"] = round(before * ready_share)
        if fault == "old-pods" and last is not None:
            # the same readings as the step before, on its ready pods; every pod Ready now
            users, cpu, pods, asked = last
            kube.ready["api"] = before
            source = old_pods_source(users, cpu, pods)
        else:
            source = source_for("ok" if fault == "old-pods" else fault, users, cpu)
        report = run_check(SETTINGS[low], source, kube, history, at)
        after = kube.replicas["api"]
        if fault == "old-pods" and last is not None and before > 0:
            # groupPods: the ready pods behind no sample count as idle; no second scale-up
            assert after <= max(before, asked), (last, before, after)
        [result] = report.results
        decision = result.decision
        last = None
        if (fault == "ok" and decision is not None and decision.recommendation is not None
                and kube.ready["api"] > 0):   # readings that stood on some ready pods
            # whole units, so the ratio is the same before and after the HPA's truncation
            last = (float(int(users)), float(int(cpu)), kube.ready["api"],
                    decision.recommendation)
        if before == 0 and low > 0:
            assert after == 0        # the HPA: 0 replicas with min > 0 means scaling is off
            continue
        assert low <= after <= MAX
        if fault in UNREADABLE:
            assert after >= before, (fault, before, after)
        if fault == "api-error":
            assert after == before
        if fault in ("prometheus-down", "empty", "negative", "mixed-labels"):
            assert report.exit_code == 3, (fault, report.metric_errors)
