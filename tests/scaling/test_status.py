"""status (pure part): the last decision recomputed from the history alone equals the decision
`check` made (reason, replicas, held-until, limits) over a run of loads that hits every rule;
the last scale and its why from the history and devscale's Events; the lookup of a Deployment's
history; the table and the JSON document."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from devtrip_scale.core.errors import ExitCode
from devtrip_scale.scaling import status as st
from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.models import History, Recommendation, ScaleEvent
from devtrip_scale.scaling.ports import MetricResult, Workload
from devtrip_scale.scaling.reconcile import run_check, scaled_message
from devtrip_scale.scaling.render import console
from tests.conftest import NOW
from tests.fakes import FakeDeployments, MemoryHistory, StaticSource


def settings(**scaling: object) -> Settings:
    return Settings.model_validate({
        "namespace": "devtrip",
        "targets": [{"deployment": "api"}, {"deployment": "worker", "maxReplicas": 3}],
        "scaling": {"minReplicas": 1, "maxReplicas": 10, **scaling},
        "metrics": [{"name": "cpu", "preset": "cpu_utilization",
                     "target": {"type": "Utilization", "value": 70}}],
    })


RULES = [
    pytest.param({}, {"ScaleDownStabilized", "TooManyReplicas"}, id="hpa-defaults"),
    pytest.param({"behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 120,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 300}}},
        {"ScaleUpStabilized", "ScaleDownStabilized", "ScaleUpLimit"}, id="slow-up-and-windows"),
    pytest.param({"scaleUpCooldownSeconds": 180, "scaleDownCooldownSeconds": 240,
                  "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
                 {"ScaleUpCooldown", "ScaleDownCooldown"}, id="cooldowns"),
]
# cpu per minute: up, hot, far over, on target, down, idle, back up
LOADS = [70, 140, 140, 300, 300, 72, 70, 20, 20, 20, 20, 20, 20, 20, 150, 150, 150, 60, 60]


@pytest.mark.parametrize(("scaling", "rules"), RULES)
def test_last_decision_from_the_history_equals_checks_decision(scaling: dict[str, object],
                                                                 rules: set[str]) -> None:
    s = settings(**scaling)
    kube, history = FakeDeployments({"api": 2, "worker": 1}), MemoryHistory()
    seen: set[str] = set()
    for minute, cpu in enumerate(LOADS):
        at = NOW + timedelta(minutes=minute)
        source = StaticSource({"cpu": MetricResult("cpu", values={"api": cpu, "worker": 70})})
        [api, _] = run_check(s, source, kube, history, at).results
        real = api.decision
        assert real is not None
        report = st.build(s, kube, history.stored, {}, at)
        got = report.deployments[0]
        assert got.decision is not None, minute
        assert (got.decision.desired_replicas, got.decision.limits) == \
            (real.desired_replicas, real.limits), minute
        if real.recommendation == real.current_replicas:   # the history cannot tell these apart
            assert {got.decision.reason, real.reason} <= {"WithinTolerance",
                                                          "DesiredWithinRange"}, minute
        else:
            assert got.decision.reason == real.reason, minute
        if real.held_until is not None:
            assert got.held_until == real.held_until, minute
        if real.reason.endswith("Cooldown"):
            assert got.held_until is not None and got.held_until > at
        assert got.last_run == at and got.recommendation == real.recommendation
        seen.add(real.reason)
    assert rules <= seen     # the loads hit the rules of this behaviour


def test_cooldown_held_until_is_the_end_of_the_cooldown() -> None:
    spec = settings(scaleDownCooldownSeconds=240, behavior={
        "scaleDown": {"stabilizationWindowSeconds": 0}}).policy_for(None)
    history = History((Recommendation(NOW, 4), Recommendation(NOW, 8),
                       Recommendation(NOW + timedelta(minutes=1), 2)),
                      (ScaleEvent(NOW, 4, 8),), 8)
    decision, until = st.last_decision(history, spec, 8)
    assert decision is not None and decision.reason == "ScaleDownCooldown"
    assert until == NOW + timedelta(seconds=240)


def test_no_recommendation_no_decision() -> None:
    assert st.last_decision(History(), settings().policy_for(None), 3) == (None, None)


def test_history_lookup_is_by_the_deployments_uid() -> None:
    api = Workload("api", 2, "1", uid="u-1")
    assert st.history_of({"u-1": History(last_written=2)}, api) == History(last_written=2)
    assert st.history_of({"api": History()}, api) is None   # a name is not the same Deployment


def event(minutes: float, message: str, reason: str = "Scaled") -> st.DevscaleEvent:
    return st.DevscaleEvent(NOW + timedelta(minutes=minutes), "Normal", reason, message)


def test_last_scale_takes_its_why_from_the_scaled_event() -> None:
    s = settings()
    kube, history = FakeDeployments({"api": 2, "worker": 1}), MemoryHistory()
    source = StaticSource({"cpu": MetricResult("cpu", values={"api": 140, "worker": 70})})
    [api, _] = run_check(s, source, kube, history, NOW).results
    assert api.decision is not None
    why = scaled_message(api.decision)
    events = {"api": [event(-30, "Scaled from 1 to 2: old"), event(0.1, why)]}
    kube.ready["api"] = 2
    got = st.build(s, kube, history.stored, events, NOW).deployments[0]
    assert got.last_scale == st.LastScale(NOW, 2, 4, why)
    assert got.ready_replicas == 2 and got.replicas == 4 and got.last_written == 4
    assert got.last_event == events["api"][-1]


def test_a_scale_older_than_the_history_still_shows_from_its_event() -> None:
    kube = FakeDeployments({"api": 4, "worker": 1})
    events = {"api": [event(-50, "Scaled from 2 to 4: cpu 140 against a target of 70 "
                                 "(DesiredWithinRange)")]}
    got = st.build(settings(), kube, {"uid-api": History(last_written=4)}, events, NOW)
    api = got.deployments[0]
    assert api.last_scale is not None
    assert (api.last_scale.from_replicas, api.last_scale.to_replicas) == (2, 4)
    assert api.last_scale.at == NOW - timedelta(minutes=50)
    assert api.decision is None and api.last_run is None


def test_replicas_changed_by_someone_else_and_a_missing_target_are_reported() -> None:
    kube = FakeDeployments({"api": 5})
    report = st.build(settings(), kube, {"uid-api": History(last_written=3)}, {}, NOW)
    api, worker = report.deployments
    assert api.warnings == ["replicas are 5, but devscale last wrote 3: something else "
                            "changed them"]
    assert worker.error == "deployment worker not found in namespace devtrip"
    assert report.exit_code == ExitCode.PARTIAL


def test_only_narrows_to_the_named_deployment() -> None:
    kube = FakeDeployments({"api": 2, "worker": 1})
    report = st.build(settings(), kube, {}, {}, NOW, only=["worker"])
    assert [d.deployment for d in report.deployments] == ["worker"]
    assert report.deployments[0].spec is not None
    assert report.deployments[0].spec.max_replicas == 3


def test_table_and_json_show_targets_decision_and_held_until() -> None:
    import io

    s = settings(behavior={"scaleDown": {"stabilizationWindowSeconds": 300}})
    kube, history = FakeDeployments({"api": 4, "worker": 1}), MemoryHistory()
    for minute, cpu in enumerate([70, 20]):
        source = StaticSource({"cpu": MetricResult("cpu", values={"api": cpu, "worker": 70})})
        run_check(s, source, kube, history, NOW + timedelta(minutes=minute))
    report = st.build(s, kube, history.stored, {}, NOW + timedelta(minutes=1))
    doc = json.loads(json.dumps(st.to_dict(report)))
    api = doc["deployments"][0]
    assert doc["schemaVersion"] == 1 and doc["exitCode"] == 0
    assert api["targets"] == [{"metric": "cpu", "type": "Utilization", "target": 70.0}]
    assert api["lastDecision"]["reason"] == "ScaleDownStabilized"
    assert api["lastDecision"]["desiredReplicas"] == 4 and api["recommendation"] == 2
    assert api["heldUntil"] == (NOW + timedelta(seconds=300)).isoformat()
    assert (api["minReplicas"], api["maxReplicas"], api["replicas"]) == (1, 10, 4)
    out = io.StringIO()
    console(out).print(st.table(report, width=80))
    lines = out.getvalue().splitlines()
    assert lines[0] == "2 Deployments in namespace devtrip"
    assert lines[1].split() == ["NAME", "READY", "MIN/MAX", "LAST", "RUN", "DECISION", "LAST",
                                "SCALE"]
    # one line per Deployment, ages as kubectl prints them: held 4m more, run 0s ago
    assert lines[2].split() == ["api", "4/4", "1/10", "0s", "ScaleDownStabilized", "for", "4m",
                                "-"]
    assert lines[3].split() == ["worker", "1/1", "1/3", "0s", "WithinTolerance", "-"]
    assert len(lines) == 4 and max(len(line) for line in lines) <= 80
    out = io.StringIO()
    console(out).print(st.table(report, width=80, wide=True))
    text = out.getvalue()
    assert "cpu 70%" in text and "ScaleDownStabilized" in text
    assert f"held until: {(NOW + timedelta(seconds=300)).isoformat()}" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_report_over_several_namespaces_leads_with_the_namespace_and_groups_by_it() -> None:
    import io

    report = st.StatusReport("platform", NOW, [
        st.TargetStatus("web", replicas=2, ready_replicas=2, namespace="team-b"),
        st.TargetStatus("api", replicas=3, ready_replicas=2, namespace="team-a"),
        st.TargetStatus("ghost", error="deployment ghost not found in namespace team-a",
                        namespace="team-a")])
    out = io.StringIO()
    console(out).print(st.table(report, width=80))
    lines = out.getvalue().splitlines()
    assert lines[0] == "3 Deployments in 2 namespaces"
    assert lines[1].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:3] for line in lines[2:5]] == [
        ["team-a", "api", "2/3"], ["team-a", "ghost", "-"], ["team-b", "web", "2/2"]]
    assert lines[5] == "error: team-a/ghost: deployment ghost not found in namespace team-a"
