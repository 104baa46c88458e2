"""reconcile.run_check over in-memory ports: no-op, scale up/down, partial metrics, dry run vs
real, conflicts re-decided, one target's failure isolated, exit codes, history carried, and the
notifications that follow the scaling without changing it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from devtrip_scale.core.errors import ExitCode, KubeError, KubeForbidden
from devtrip_scale.notify import Notice
from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.models import History, Unschedulable
from devtrip_scale.scaling.ports import MetricQuery, MetricResult, Workload
from devtrip_scale.scaling.reconcile import run_check
from tests.conftest import NOW
from tests.fakes import FakeDeployments, MemoryHistory, RecordingNotifier, StaticSource


def settings(**scaling: object) -> Settings:
    return Settings.model_validate({
        "namespace": "devtrip",
        "targets": [{"selector": "tier=api"}, {"deployment": "worker", "maxReplicas": 3}],
        "scaling": {"minReplicas": 1, "maxReplicas": 10,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}, **scaling},
        "metrics": [
            {"name": "cpu", "preset": "cpu_utilization",
             "target": {"type": "Utilization", "value": 70}},
            {"name": "jobs", "query": "sum(q{namespace=\"{namespace}\"})",
             "target": {"type": "AverageValue", "value": 1}},
        ],
    })


def deployments() -> FakeDeployments:
    return FakeDeployments({"api": 2, "web": 4, "worker": 1},
                           labels={"api": {"tier": "api"}, "web": {"tier": "api"}})


def test_scales_each_target_and_batches_one_query_per_metric() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140, "web": 70}),
                           "jobs": MetricResult("jobs", shared=5)})
    kube, history = deployments(), MemoryHistory()
    report = run_check(settings(), source, kube, history, NOW)
    assert [q.name for q in source.queries] == ["cpu", "jobs"]
    assert 'namespace="devtrip"' in source.queries[1].promql
    # api: cpu asks 4, the shared jobs 5 → 5; web: jobs 5 > cpu 4; worker: its own max of 3
    assert kube.replicas == {"api": 5, "web": 5, "worker": 3}
    assert report.exit_code == ExitCode.OK
    assert set(history.stored) == {"uid-api", "uid-web", "uid-worker"}
    assert history.stored["uid-worker"].last_written == 3


def test_dry_run_writes_neither_replicas_nor_history() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube, history = deployments(), MemoryHistory()
    report = run_check(settings(), source, kube, history, NOW, dry_run=True)
    assert kube.writes == [] and history.saves == 0
    assert {r.deployment: r.decision.desired_replicas for r in report.results
            if r.decision} == {"api": 4, "web": 4, "worker": 1}


def test_missing_metric_for_one_deployment_holds_only_that_one() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 10},
                                               unusable={"web": "the reading is NaN"}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = deployments()
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    assert kube.replicas["web"] == 4          # NaN: not shrunk
    assert kube.replicas["api"] == 1          # both metrics read: shrinks
    assert report.exit_code == ExitCode.OK
    web = next(r for r in report.results if r.deployment == "web")
    assert web.decision is not None and web.decision.reason == "MissingMetrics"


def test_a_failed_query_is_the_metrics_exit_code_and_never_shrinks() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", error="cannot connect to Prometheus"),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = deployments()
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    assert kube.writes == []
    assert report.exit_code == ExitCode.METRICS
    assert report.metric_errors == {"cpu": "cannot connect to Prometheus"}


def test_conflict_reads_again_and_decides_again() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = FakeDeployments({"api": 2}, labels={"api": {"tier": "api"}}, conflicts=2)
    s = Settings.model_validate({**settings().model_dump(by_alias=True),
                                 "targets": [{"deployment": "api"}]})
    report = run_check(s, source, kube, MemoryHistory(), NOW)
    assert [w[2] for w in kube.writes] == ["1", "2", "3"]   # each try on the fresh version
    assert kube.replicas["api"] == 4 and report.exit_code == ExitCode.OK


def test_conflict_gives_up_after_three_tries() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = FakeDeployments({"api": 2, "web": 2}, labels={"api": {"tier": "api"}},
                           conflicts=3)
    s = Settings.model_validate({**settings().model_dump(by_alias=True),
                                 "targets": [{"deployment": "api"}]})
    report = run_check(s, source, kube, MemoryHistory(), NOW)
    assert len(kube.writes) == 3
    assert report.exit_code == ExitCode.KUBERNETES
    assert "gave up after 3 attempts" in (report.results[0].error or "")


def test_one_failure_does_not_stop_the_others_and_is_partial() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140, "web": 140}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = deployments()
    kube.fail["api"] = KubeForbidden("forbidden: cannot patch deployments/scale/api")
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    assert kube.replicas["web"] == 8
    assert report.exit_code == ExitCode.PARTIAL


@pytest.mark.parametrize(("only", "expected"), [(("web",), ["web"]),
                                                (("nope",), ["nope"])])
def test_only_narrows_and_reports_unknown_names(only: tuple[str, ...],
                                                expected: list[str]) -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={}),
                           "jobs": MetricResult("jobs", shared=0)})
    report = run_check(settings(), source, deployments(), MemoryHistory(), NOW, only=only)
    assert [r.deployment for r in report.results] == expected
    if only == ("nope",):
        assert "not a target" in (report.results[0].error or "")


def test_missing_named_deployment_is_a_failed_target() -> None:
    source = StaticSource({"cpu": MetricResult("cpu", values={}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = FakeDeployments({"api": 2}, labels={"api": {"tier": "api"}})
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    failed = [r for r in report.results if r.error]
    assert [r.deployment for r in failed] == ["worker"]
    assert report.exit_code == ExitCode.PARTIAL


def test_history_carries_the_scale_down_window_across_runs() -> None:
    s = settings(behavior={"scaleDown": {"stabilizationWindowSeconds": 300}})
    kube, history = deployments(), MemoryHistory()
    low = StaticSource({"cpu": MetricResult("cpu", values={"api": 20, "web": 70}),
                        "jobs": MetricResult("jobs", shared=0)})
    for offset in (0, 120, 299):
        run_check(s, low, kube, history, NOW + timedelta(seconds=offset))
        assert kube.replicas["api"] == 2    # seeded window holds 2 for 300 s
    run_check(s, low, kube, history, NOW + timedelta(seconds=420))
    assert kube.replicas["api"] == 1


def hot() -> StaticSource:
    """api runs hot (2 → 4); web and worker are on target."""
    return StaticSource({"cpu": MetricResult("cpu", values={"api": 140, "web": 70,
                                                            "worker": 70}),
                         "jobs": MetricResult("jobs", shared=0)})


def test_one_message_after_the_scaling_and_a_failing_channel_changes_nothing() -> None:
    kube, history = deployments(), MemoryHistory()
    told, broken = RecordingNotifier(), RecordingNotifier("broken", fail="SMTP down")
    report = run_check(settings(), hot(), kube, history, NOW, notifiers=[broken, told])
    assert kube.replicas["api"] == 4                      # scaled although a channel failed
    [message] = told.messages                            # one message for the whole run
    assert [n.key for n in message] == ["scaled:api:up"]
    assert report.notify_failures == ["broken: SMTP down"]
    assert report.exit_code == ExitCode.NOTIFY
    assert history.notes is not None and "scaled:api:up" in history.notes


def test_run_level_recovery_rides_in_the_same_message() -> None:
    resolved = Notice("recovered", "info", "recovered:failed:run:kubernetes",
                      "resolved: devscale could not use the Kubernetes API", "cleared")
    told = RecordingNotifier()
    run_check(settings(), hot(), deployments(), MemoryHistory(), NOW, notifiers=[told],
              recovered=[resolved])
    [message] = told.messages
    assert [n.key for n in message] == ["recovered:failed:run:kubernetes", "scaled:api:up"]


def test_dry_run_tells_nobody() -> None:
    told = RecordingNotifier()
    run_check(settings(), hot(), deployments(), MemoryHistory(), NOW, dry_run=True,
              notifiers=[told])
    assert told.messages == []


def test_a_negative_reading_is_named_never_shrinks_and_fails_the_metrics() -> None:
    # a queue answering -4 waiting jobs once shrank the workers to their minimum, exit 0
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 10},
                                               invalid={"web": "negative reading -3 is not "
                                                        "a load"}),
                           "jobs": MetricResult("jobs", shared=0)})
    kube = deployments()
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    assert kube.replicas["web"] == 4 and kube.replicas["api"] == 1
    assert report.exit_code == ExitCode.METRICS
    assert report.metric_errors == {
        "cpu": "invalid readings, not used: web: negative reading -3 is not a load"}


def test_ready_pods_reach_the_policy() -> None:
    # spec.replicas 5 right after a scale-up, 2 of them ready, readings of the old pods: the
    # HPA's unready-pod rule holds at 5 rather than scaling up a second time
    kube = FakeDeployments({"api": 5}, labels={"api": {"tier": "api"}}, ready={"api": 2})
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 175}),
                           "jobs": MetricResult("jobs", shared=0)})
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    [api] = [r for r in report.results if r.deployment == "api"]
    assert api.decision is not None and api.decision.ready_pods == 2
    assert kube.replicas["api"] == 5 and kube.writes == []


def test_history_is_keyed_by_uid_and_a_recreated_deployment_starts_afresh() -> None:
    kube, history = deployments(), MemoryHistory()
    history.stored = {"uid-api": History(last_written=7), "uid-gone": History(last_written=3),
                      "api": History(last_written=9)}        # before UIDs, keyed by name
    kube.uids["api"] = "uid-api-2"                            # deleted, created again
    report = run_check(settings(), hot(), kube, history, NOW)
    [api] = [r for r in report.results if r.deployment == "api"]
    assert api.warnings == []                                 # not "reset behind our back"
    assert set(history.stored) == {"uid-api-2", "uid-web", "uid-worker"}


def test_a_refused_history_write_fails_the_run_and_is_told() -> None:
    told = RecordingNotifier()
    resolved = Notice("recovered", "info", "recovered:failed:run:kubernetes",
                      "resolved: devscale could not use the Kubernetes API", "cleared")
    kube, history = deployments(), MemoryHistory()
    history.fail = KubeForbidden("forbidden: cannot patch configmaps/devscale-history")
    report = run_check(settings(), hot(), kube, history, NOW, notifiers=[told],
                       recovered=[resolved])
    assert kube.replicas["api"] == 4                          # the scaling stands
    assert report.exit_code == ExitCode.KUBERNETES
    assert report.history_error is not None
    assert "cannot patch configmaps/devscale-history" in report.history_error
    [message] = told.messages                                 # nothing resolved: nothing kept
    assert [n.key for n in message] == ["scaled:api:up", "failed:run:history"]


@pytest.mark.parametrize("error", [KubeError("HTTP 500")])
def test_history_error_outranks_metric_errors_in_the_exit_code(error: KubeError) -> None:
    history = MemoryHistory()
    history.fail = error
    source = StaticSource({"cpu": MetricResult("cpu", error="down"),
                           "jobs": MetricResult("jobs", shared=5)})
    report = run_check(settings(), source, deployments(), history, NOW)
    assert report.exit_code == ExitCode.KUBERNETES


def test_pods_that_cannot_be_scheduled_are_said_and_stop_further_scale_ups() -> None:
    kube = FakeDeployments({"api": 5}, labels={"api": {"tier": "api"}}, ready={"api": 2})
    kube.stuck["api"] = Unschedulable(3, 0, NOW - timedelta(minutes=6),
                                      "0/3 nodes are available: 3 Insufficient cpu.")
    told = RecordingNotifier()
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 300}),
                           "jobs": MetricResult("jobs", shared=0)})
    report = run_check(settings(), source, kube, MemoryHistory(), NOW, notifiers=[told])
    [api] = [r for r in report.results if r.deployment == "api"]
    assert api.capacity == ("capacity: 3 of 5 pods unschedulable for 6 min: 0/3 nodes are "
                            "available: 3 Insufficient cpu.")
    assert api.decision is not None and api.decision.reason == "ScaleUpUnschedulable"
    assert kube.replicas["api"] == 5
    assert "unschedulable:api" in [n.key for n in told.messages[0]]


class _ListingGate(FakeDeployments):
    """Lists only once the metrics are being asked for: a pass that waited for the list
    before asking Prometheus would never get its answer."""

    def __init__(self, asked: threading.Event) -> None:
        super().__init__({"api": 2, "web": 4, "worker": 1},
                         labels={"api": {"tier": "api"}, "web": {"tier": "api"}})
        self._asked = asked

    def list(self, selector: str | None) -> list[Workload]:
        assert self._asked.wait(10), "the metrics were not asked for while the list ran"
        return super().list(selector)


def test_prometheus_is_asked_while_the_cluster_is_read() -> None:
    asked = threading.Event()

    class Asking(StaticSource):
        def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
            asked.set()
            return super().fetch(queries)

    source = Asking({"cpu": MetricResult("cpu", values={"api": 140, "web": 70}),
                     "jobs": MetricResult("jobs", shared=5)})
    kube = _ListingGate(asked)
    report = run_check(settings(), source, kube, MemoryHistory(), NOW)
    assert kube.replicas == {"api": 5, "web": 5, "worker": 3}
    assert report.exit_code == ExitCode.OK


def test_a_fetch_that_raises_raises_in_the_pass() -> None:
    class Broken(StaticSource):
        def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
            raise RuntimeError("adapter bug")

    with pytest.raises(RuntimeError, match="adapter bug"):
        run_check(settings(), Broken({}), deployments(), MemoryHistory(), NOW)


def test_a_selector_target_is_matched_on_the_one_list() -> None:
    kube = FakeDeployments({"api": 2, "web": 4, "worker": 1, "batch": 1},
                           labels={"api": {"tier": "api"}, "web": {"tier": "api", "canary": "1"},
                                   "batch": {"tier": "jobs"}})
    lists: list[str | None] = []
    original = kube.list
    kube.list = lambda selector: lists.append(selector) or original(selector)  # type: ignore[method-assign]
    config = settings().model_copy(update={"targets": settings().targets[:1]})
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 70, "web": 70}),
                           "jobs": MetricResult("jobs", shared=1)})
    report = run_check(config, source, kube, MemoryHistory(), NOW, dry_run=True)
    assert [r.deployment for r in report.results] == ["api", "web"]
    assert lists == [None]
