"""Fleet configs and passes over in-memory ports: the config's forms and errors, joining a
policy by annotation with overrides within bounds, one query per metric for every namespace,
broken annotations named and left alone, unlisted namespaces untouched, the write caps, each
namespace's own history, and the plan of a dry run carrying every target's namespace."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtrip_scale.core.errors import ConfigError, ExitCode
from devtrip_scale.scaling import render
from devtrip_scale.scaling.config import Settings, load_config
from devtrip_scale.scaling.fleet import Joined, fleet_promql, fleet_queries, join
from devtrip_scale.scaling.ports import MetricResult
from devtrip_scale.scaling.presets import PRESETS
from devtrip_scale.scaling.reconcile import run_fleet
from tests.conftest import NOW
from tests.fakes import FakeCluster, MemoryHistory, RecordingEvents, StaticSource

POLICY = "devscale.devtrip.io/policy"
FLEET = """\
namespace: platform
namespaces: [team-a, team-b]
fleet:
  maxWritesPerPass: 50
  maxWritesPerNamespace: 10
policies:
  web:
    scaling:
      minReplicas: 2
      maxReplicas: 10
      behavior: {scaleDown: {stabilizationWindowSeconds: 0}}
    overrides:
      minReplicas: {min: 1, max: 4}
      maxReplicas: {min: 2, max: 20}
    metrics:
      - name: cpu
        preset: cpu_utilization
        target: {type: Utilization, value: 70}
  worker:
    scaling: {minReplicas: 1, maxReplicas: 3}
    metrics:
      - name: cpu
        preset: cpu_utilization
        target: {type: Utilization, value: 50}
      - name: jobs
        query: sum by (deployment) (jobs_waiting{namespace="{namespace}"})
        target: {type: AverageValue, value: 5}
"""


def fleet(text: str = FLEET, tmp: Path | None = None) -> Settings:
    import yaml

    return Settings.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize(("change", "line", "message"), [
    pytest.param(("namespaces: [team-a, team-b]\n", "namespaces: [team-a, Team_B]\n"), 2,
                 "namespaces: 'Team_B' is not a valid namespace name", id="bad-namespace"),
    pytest.param(("namespaces: [team-a, team-b]\n",
                  "namespaces: [team-a]\nallNamespaces: true\n"), 3,
                 "allNamespaces: give one of `namespaces`, `namespaceSelector` or", id="two-forms"),
    pytest.param(("namespaces: [team-a, team-b]\n", ""), 5,
                 "policies: say which namespaces the fleet covers", id="no-namespaces"),
    pytest.param(("namespaces: [team-a, team-b]\n", "namespaceSelector: 'a in ('\n"), 2,
                 "namespaceSelector: 'a in (' is not a label selector", id="bad-selector"),
    pytest.param(("value: 50}\n      - name: jobs", "value: 50}\n        window: 5m\n"
                  "      - name: jobs"), 22, "policies.worker.metrics[0]: metric 'cpu' is read "
                 "differently in policy 'web'", id="one-query-per-name"),
    pytest.param(("minReplicas: {min: 1, max: 4}", "minReplicas: {min: 5, max: 4}"), 13,
                 "policies.web.overrides.minReplicas: min (5) is above max (4)",
                 id="bounds-reversed"),
    pytest.param(("fleet:\n", "targets: [{deployment: api}]\nfleet:\n"), 3,
                 "targets: a fleet config names its metrics in each policy", id="fleet-targets"),
])
def test_fleet_config_errors_name_file_line_and_field(
        tmp_path: Path, change: tuple[str, str], line: int, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace(*change))
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert f"{path}:{line}: {message}" in str(e.value), str(e.value)


def test_fleet_config_loads_and_the_classic_form_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    s = load_config(path, env={})
    assert s.is_fleet and s.namespaces == ("team-a", "team-b")
    assert [m.name for m in s.fleet_metrics()] == ["cpu", "jobs"]
    classic = tmp_path / "one.yaml"
    classic.write_text("namespace: a\nmetrics: [{name: cpu, preset: cpu_utilization, "
                       "target: {type: Utilization, value: 70}}]\n")
    with pytest.raises(ConfigError, match=r"one.yaml:1: targets: Field required"):
        load_config(classic, env={})


@pytest.mark.parametrize(("annotations", "outcome"), [
    pytest.param({}, None, id="not-opted-in"),
    pytest.param({POLICY: "web"}, (2, 10), id="policy-limits"),
    pytest.param({POLICY: "web", "devscale.devtrip.io/min-replicas": "3",
                  "devscale.devtrip.io/max-replicas": "20"}, (3, 20), id="overrides"),
    pytest.param({POLICY: "web", "devscale.devtrip.io/min-replicas": "9"},
                 "9 is outside 1..4, the range policy web allows", id="outside-bounds"),
    pytest.param({POLICY: "web", "devscale.devtrip.io/min-replicas": "three"},
                 "'three' is not a whole number", id="not-a-number"),
    pytest.param({POLICY: "worker", "devscale.devtrip.io/max-replicas": "5"},
                 "policy worker does not let a Deployment change its maxReplicas",
                 id="not-overridable"),
    pytest.param({POLICY: "db"}, "'db' is not a policy of this config (known: web, worker)",
                 id="unknown-policy"),
    pytest.param({POLICY: "web", "devscale.devtrip.io/min-replicas": "4",
                  "devscale.devtrip.io/max-replicas": "2"}, "minReplicas 4 is above "
                 "maxReplicas 2", id="min-above-max"),
])
def test_join_reads_the_policy_and_its_overrides(annotations: dict[str, str],
                                                 outcome: Any) -> None:
    got = join(fleet(), annotations)
    if outcome is None or isinstance(outcome, str):
        assert got is None if outcome is None else (isinstance(got, str) and outcome in got)
    else:
        assert isinstance(got, Joined)
        assert (got.spec.min_replicas, got.spec.max_replicas) == outcome


def test_one_query_per_metric_for_every_namespace_labelled_namespace_slash_name() -> None:
    cpu, jobs = fleet_queries(fleet(), ["team-b", "team-a"])
    assert 'namespace=~"team-a|team-b"' in cpu.promql
    assert "sum by (namespace, deployment)" in cpu.promql
    assert cpu.promql.startswith("label_join(") and '"deployment", "/", "namespace"' in cpu.promql
    assert jobs.promql.startswith("label_join(sum by (namespace, deployment) (jobs_waiting")
    # a query without `by (deployment` (a queue's depth) stays one shared value
    assert fleet_promql('sum(q{namespace="{namespace}"})', "a|b", "2m") == \
        'sum(q{namespace=~"a|b"})'
    from devtrip_scale.scaling.config import promql_problem
    for preset in PRESETS.values():
        assert promql_problem(fleet_promql(preset, "a|b", "2m")) is None


def cluster() -> FakeCluster:
    return FakeCluster(
        {"team-a/api": 2, "team-a/queue": 1, "team-b/web": 6, "team-b/broken": 3,
         "team-b/plain": 2, "other/api": 2},
        annotations={"team-a/api": {POLICY: "web"}, "team-a/queue": {POLICY: "worker"},
                     "team-b/web": {POLICY: "web", "devscale.devtrip.io/min-replicas": "1"},
                     "team-b/broken": {POLICY: "web", "devscale.devtrip.io/max-replicas": "x"},
                     "other/api": {POLICY: "web"}})


def readings() -> StaticSource:
    return StaticSource({
        "cpu": MetricResult("cpu", values={"team-a/api": 140, "team-a/queue": 10,
                                           "team-b/web": 10, "team-b/broken": 500,
                                           "other/api": 500}),
        "jobs": MetricResult("jobs", values={"team-a/queue": 12}),
    })


def test_one_pass_scales_the_opted_in_names_the_broken_and_leaves_the_rest() -> None:
    kube, events = cluster(), RecordingEvents()
    stores: dict[str, MemoryHistory] = {}
    source = readings()
    report = run_fleet(fleet(), source, kube, lambda ns: stores.setdefault(ns, MemoryHistory()),
                       NOW, events_of=lambda ns: events)
    assert kube.lists == 1 and [q.name for q in source.queries] == ["cpu", "jobs"]
    # api: cpu 140/70 → 4; queue: jobs 12/5 → 3 (its max); web: 6×10/70 → 1 (its own min)
    assert dict(kube.writes) == {"team-a/api": 4, "team-a/queue": 3, "team-b/web": 1}
    assert kube.replicas["team-b/broken"] == 3 and kube.replicas["other/api"] == 2
    [broken] = [r for r in report.results if r.error]
    assert (broken.namespace, broken.deployment) == ("team-b", "broken")
    assert "devscale.devtrip.io/max-replicas: 'x' is not a whole number" in broken.error
    assert report.exit_code == ExitCode.PARTIAL
    assert set(stores) == {"team-a", "team-b"}
    assert set(stores["team-a"].stored) == {"uid-team-a/api", "uid-team-a/queue"}
    assert set(stores["team-b"].stored) == {"uid-team-b/web"}
    assert ("team-b/broken", "Warning", "InvalidScalingPolicy") in [e[:3] for e in events.recorded]
    assert {e[0] for e in events.recorded if e[2] == "Scaled"} == {
        "team-a/api", "team-a/queue", "team-b/web"}


def test_a_namespace_whose_histories_did_not_change_is_not_written() -> None:
    """No reading, no recommendation: each history is what the ConfigMap holds already, so the
    pass writes none of them (and keeps them as they are for the next pass)."""
    kube, stores = cluster(), dict[str, MemoryHistory]()
    run_fleet(fleet(), readings(), kube, lambda ns: stores.setdefault(ns, MemoryHistory()), NOW)
    kept = {ns: dict(s.stored) for ns, s in stores.items()}
    assert {ns: s.saves for ns, s in stores.items()} == {"team-a": 1, "team-b": 1}
    later = NOW + timedelta(seconds=1)   # within every window: nothing ages out
    report = run_fleet(fleet(), StaticSource({}), kube, lambda ns: stores[ns], later)
    assert report.metric_errors and report.history_error is None
    assert {ns: s.saves for ns, s in stores.items()} == {"team-a": 1, "team-b": 1}
    assert {ns: s.stored for ns, s in stores.items()} == kept
    # a reading in team-a only: team-a's ConfigMap is written, team-b's is not
    run_fleet(fleet(), StaticSource({"cpu": MetricResult("cpu", values={"team-a/api": 70})}),
              kube, lambda ns: stores[ns], later)
    assert {ns: s.saves for ns, s in stores.items()} == {"team-a": 2, "team-b": 1}


def test_each_namespace_is_written_once_decided_and_none_after_the_lease_is_lost() -> None:
    """The Lease is asked before every write: team-a's scalings and its history go while it
    is held; lost before team-b's scaling, neither that nor team-b's history is written."""
    kube, stores = cluster(), dict[str, MemoryHistory]()
    asked: list[int] = []

    def writable() -> str | None:
        asked.append(len(asked))
        return None if len(asked) <= 3 else "the Lease went to another runner"

    report = run_fleet(fleet(), readings(), kube,
                       lambda ns: stores.setdefault(ns, MemoryHistory()), NOW,
                       writable=writable)
    assert dict(kube.writes) == {"team-a/api": 4, "team-a/queue": 3}
    assert {ns: s.saves for ns, s in stores.items()} == {"team-a": 1, "team-b": 0}
    assert report.history_error == ("history not saved: the Lease went to another runner "
                                    "(1 namespace(s) written before it was lost)")


def test_write_caps_defer_the_rest_and_say_so() -> None:
    settings = fleet(FLEET.replace("maxWritesPerNamespace: 10", "maxWritesPerNamespace: 1"))
    kube = cluster()
    report = run_fleet(settings, readings(), kube, lambda ns: MemoryHistory(), NOW)
    assert dict(kube.writes) == {"team-a/api": 4, "team-b/web": 1}
    [deferred] = [r for r in report.results if r.deferred]
    assert deferred.deployment == "queue" and "maxWritesPerNamespace" in deferred.deferred
    assert any("1 scaling change(s) deferred" in w for w in report.warnings)
    per_pass = fleet(FLEET.replace("maxWritesPerPass: 50", "maxWritesPerPass: 2"))
    kube = cluster()
    run_fleet(per_pass, readings(), kube, lambda ns: MemoryHistory(), NOW)
    assert len(kube.writes) == 2


def test_dry_run_plan_is_json_with_the_namespace_on_every_target() -> None:
    kube, stores = cluster(), dict[str, MemoryHistory]()
    report = run_fleet(fleet(), readings(), kube, lambda ns: stores.setdefault(
        ns, MemoryHistory()), NOW, dry_run=True, in_namespaces=("team-a",))
    assert kube.writes == [] and all(s.saves == 0 for s in stores.values())
    doc = json.loads(render.to_json(report))
    assert [(d["namespace"], d["name"], d["policy"], d["action"]) for d in doc["deployments"]] \
        == [("team-a", "api", "web", "would scale up"), ("team-a", "queue", "worker",
                                                         "would scale up")]


def test_namespace_selector_and_all_namespaces() -> None:
    by_label = fleet(FLEET.replace("namespaces: [team-a, team-b]", "namespaceSelector: "
                                   "devscale=on"))
    kube = cluster()
    kube.namespace_labels = {"other": {"devscale": "on"}}
    run_fleet(by_label, readings(), kube, lambda ns: MemoryHistory(), NOW)
    assert dict(kube.writes) == {"other/api": 6}   # 2 → 15 wanted, +4 at most
    everywhere = fleet(FLEET.replace("namespaces: [team-a, team-b]", "allNamespaces: true"))
    kube = cluster()
    run_fleet(everywhere, readings(), kube, lambda ns: MemoryHistory(), NOW)
    assert {k.split("/")[0] for k, _ in kube.writes} == {"team-a", "team-b", "other"}


def test_config_validate_and_show_handle_a_fleet(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from devtrip_scale.cli import app

    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    runner = CliRunner()
    done = runner.invoke(app, ["config", "validate", "-c", str(path), "-o", "json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert (doc["fleet"], doc["namespaces"], doc["policies"], doc["metrics"]) == (
        True, ["team-a", "team-b"], ["web", "worker"], 2)
    shown = runner.invoke(app, ["config", "show", "-c", str(path), "-o", "json"])
    settings = json.loads(shown.output)["settings"]
    assert "targets" not in settings and "metrics" not in settings
    assert settings["policies"]["web"]["scaling"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] == 0
    assert settings["policies"]["web"]["overrides"]["minReplicas"] == {"min": 1, "max": 4}
    path.write_text(FLEET.replace("value: 70}", "value: 70, extra: 1}"))
    bad = runner.invoke(app, ["config", "validate", "-c", str(path)])
    assert bad.exit_code == 2
    assert "fleet.yaml:18: policies.web.metrics[0].target.extra: unknown key" in bad.output


def test_fleet_rbac_reads_cluster_wide_and_writes_only_where_listed() -> None:
    from devtrip_scale.scaling.manifests import fleet_rbac, fleet_state

    objects = fleet_rbac(fleet())
    kinds = [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects]
    assert ("ClusterRoleBinding", "devscale-fleet-read", None) in kinds
    assert [k for k in kinds if k[1] == "devscale-fleet-write" and k[0] != "ClusterRole"] == [
        ("RoleBinding", "devscale-fleet-write", "team-a"),
        ("RoleBinding", "devscale-fleet-write", "team-b")]
    [read] = [o for o in objects if o["metadata"]["name"] == "devscale-fleet-read"
              and o["kind"] == "ClusterRole"]
    assert {(r["resources"][0], tuple(r["verbs"]), tuple(r.get("resourceNames", ())))
            for r in read["rules"]} == {
        ("deployments", ("list",), ()), ("horizontalpodautoscalers", ("list",), ()),
        ("pods", ("list",), ()), ("configmaps", ("list",), ("devscale-history",))}
    [write] = [o for o in objects if o["metadata"]["name"] == "devscale-fleet-write"
               and o["kind"] == "ClusterRole"]
    assert all("create" not in r["verbs"] or r["resources"] == ["events"]
               for r in write["rules"])
    # Events: created by the pass, listed by `devscale status` (no other verb on them)
    assert [r["verbs"] for r in write["rules"] if r["resources"] == ["events"]] == [
        ["create", "list"]]
    assert {(o["metadata"]["namespace"], o["kind"]) for o in fleet_state(fleet())} >= {
        ("platform", "Lease"), ("team-a", "ConfigMap"), ("team-b", "ConfigMap")}
    by_label = fleet(FLEET.replace("namespaces: [team-a, team-b]", "namespaceSelector: team"))
    objects = fleet_rbac(by_label)
    assert ("ClusterRoleBinding", "devscale-fleet-write") in [
        (o["kind"], o["metadata"]["name"]) for o in objects]
    [read] = [o for o in objects if o["kind"] == "ClusterRole"
              and o["metadata"]["name"] == "devscale-fleet-read"]
    assert {"resources": ["namespaces"], "verbs": ["list"], "apiGroups": [""]} in read["rules"]


def test_the_fleet_cronjob_is_not_pinned_to_one_namespace(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from devtrip_scale.cli import app

    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    done = CliRunner().invoke(app, ["manifests", "cronjob", "-c", str(path)])
    assert done.exit_code == 0, done.output
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    [job] = [d for d in docs if d["kind"] == "CronJob"]
    args = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace" not in args and job["metadata"]["namespace"] == "platform"


def test_notices_go_to_their_namespace_channel_with_a_quiet_period_per_target() -> None:
    from tests.fakes import RecordingNotifier

    shared, team_a = RecordingNotifier("shared"), RecordingNotifier("team-a")
    home = MemoryHistory()
    stores: dict[str, MemoryHistory] = {"platform": home}

    def route(ns: str) -> list[RecordingNotifier]:
        return [team_a] if ns == "team-a" else [shared]

    report = run_fleet(fleet(), readings(), cluster(), lambda ns: stores.setdefault(
        ns, MemoryHistory()), NOW, notifiers=[shared], route=route)
    told_a = [n.deployment for m in team_a.messages for n in m]
    told_shared = [n.deployment for m in shared.messages for n in m]
    assert set(told_a) == {"team-a/api", "team-a/queue"}
    assert "team-b/web" in told_shared and not any(d and d.startswith("team-a/")
                                                   for d in told_shared)
    assert {n.key for n in report.notified} >= {"scaled:team-a/api:up", "scaled:team-b/web:down"}
    assert home.notes is not None   # the quiet period's state, kept at home
    again = run_fleet(fleet(), readings(), cluster(), lambda ns: stores.setdefault(
        ns, MemoryHistory()), NOW, notifiers=[shared], route=route)
    assert not [n for n in again.notified if n.key == "scaled:team-a/api:up"]


def test_fleet_route_picks_a_webhook_per_namespace_from_the_environment() -> None:
    from devtrip_scale.cli._wiring import fleet_route
    from devtrip_scale.core.trace import Trace
    from tests.fakes import RecordingNotifier

    settings = fleet(FLEET.replace("  maxWritesPerPass: 50\n",
                                   "  maxWritesPerPass: 50\n  notifyRoute: {}\n"))
    default = RecordingNotifier("slack")
    route = fleet_route(settings, None, [default], Trace(),
                        env={"SLACK_WEBHOOK_TEAM_A": "https://hooks.example/a"})
    assert route is not None
    [own] = route("team-a")
    assert own.name == "slack" and own is not default
    assert list(route("team-b")) == [default]


def test_status_of_a_fleet_reads_each_namespace_once_and_names_the_broken() -> None:
    from devtrip_scale.scaling.status import build_fleet, to_dict

    stores: dict[str, MemoryHistory] = {}
    kube = cluster()
    run_fleet(fleet(), readings(), kube, lambda ns: stores.setdefault(ns, MemoryHistory()), NOW)
    read: list[str] = []

    def history(ns: str) -> tuple[dict[str, Any], list[str]]:
        read.append(ns)
        return stores[ns].load()

    report = build_fleet(fleet(), kube, history, lambda ns: {}, NOW)
    assert read == ["team-a", "team-b"]
    doc = to_dict(report)
    rows = {(d["namespace"], d["name"]): d for d in doc["deployments"]}
    assert set(rows) == {("team-a", "api"), ("team-a", "queue"), ("team-b", "broken"),
                         ("team-b", "web")}
    assert rows[("team-a", "api")]["recommendation"] == 4
    assert rows[("team-b", "web")]["minReplicas"] == 1          # its own override
    assert "'x' is not a whole number" in rows[("team-b", "broken")]["error"]
    assert report.exit_code == ExitCode.PARTIAL


def test_simulate_replays_one_policy_of_a_fleet(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from devtrip_scale.cli import app

    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    load = tmp_path / "load.csv"
    load.write_text("timestamp,replicas,cpu,jobs\n2026-12-04T10:00:00Z,1,10,30\n"
                    "2026-12-04T10:02:00Z,3,10,30\n2026-12-04T10:04:00Z,3,10,0\n")
    runner = CliRunner()
    which = runner.invoke(app, ["simulate", "-c", str(path), "--csv", str(load), "-d", "q"])
    assert which.exit_code == 2 and "--policy NAME" in which.output
    done = runner.invoke(app, ["simulate", "-c", str(path), "--csv", str(load), "-d", "q",
                               "--policy", "worker", "-o", "json"])
    assert done.exit_code == 0, done.output
    [config] = json.loads(done.output)["configs"]
    [row] = config["deployments"]
    assert max(p["replicas"] for p in row["timeline"]) == 3   # jobs 30/5 → 6, worker's max 3


def test_the_table_renders_a_fleet_report() -> None:
    from rich.console import Console

    report = run_fleet(fleet(), readings(), cluster(), lambda ns: MemoryHistory(), NOW,
                       dry_run=True)
    screen = Console(width=200, record=True)
    screen.print(render.table(report))
    text = screen.export_text()
    assert "broken" in text and "api" in text


def test_one_namespace_history_failing_is_named_and_the_others_are_saved() -> None:
    from devtrip_scale.core.errors import KubeForbidden

    stores = {"team-a": MemoryHistory(fail=KubeForbidden("forbidden: cannot patch")),
              "team-b": MemoryHistory()}
    report = run_fleet(fleet(), readings(), cluster(), stores.__getitem__, NOW)
    assert report.history_error is not None
    assert "namespace team-a: forbidden: cannot patch" in report.history_error
    assert "team-b" not in report.history_error
    assert set(stores["team-b"].stored) == {"uid-team-b/web"}
    assert report.exit_code == ExitCode.PARTIAL   # the broken annotation still counts first


def test_narrowing_to_a_namespace_the_fleet_does_not_cover_says_so() -> None:
    kube = cluster()
    report = run_fleet(fleet(), readings(), kube, lambda ns: MemoryHistory(), NOW,
                       in_namespaces=("other",))
    assert report.results == [] and kube.writes == []
    assert report.warnings == ["-n other: not a namespace this config covers; nothing in it "
                               "is scaled"]


def test_a_deployment_an_hpa_scales_or_paused_is_skipped_with_its_namespace() -> None:
    kube = cluster()
    kube.scalers = {("team-a", "api"): "HorizontalPodAutoscaler api",
                    ("other", "api"): "HorizontalPodAutoscaler api"}
    kube.annotations["team-b/web"] = {**kube.annotations["team-b/web"],
                                      "devscale.devtrip.io/paused": "true"}
    events = RecordingEvents()
    report = run_fleet(fleet(), readings(), kube, lambda ns: MemoryHistory(), NOW,
                       events_of=lambda ns: events)
    skipped = {(r.namespace, r.deployment): r.skipped for r in report.results if r.skipped}
    assert set(skipped) == {("team-a", "api"), ("team-b", "web")}
    assert "HorizontalPodAutoscaler api" in (skipped[("team-a", "api")] or "")
    assert dict(kube.writes) == {"team-a/queue": 3}
    assert ("team-a/api", "Warning", "ScalingSkipped") in [e[:3] for e in events.recorded]


def test_an_error_under_a_hyphenated_policy_name_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("namespace: platform\nallNamespaces: true\npolicies:\n  web-api:\n"
                    "    metrics:\n      - {name: cpu, preset: cpu_utilization, "
                    "target: {type: Utilization, value: 70}}\n  batch-jobs:\n    metrics:\n"
                    "      - {name: cpu, preset: cpu_utilization, window: 5m, "
                    "target: {type: Utilization, value: 70}}\n")
    with pytest.raises(ConfigError, match=r"fleet.yaml:9: policies.batch-jobs.metrics\[0\]: "
                       "metric 'cpu' is read differently in policy 'web-api'"):
        load_config(path, env={})
