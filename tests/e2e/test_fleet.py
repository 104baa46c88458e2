"""A platform team's fleet pass on the whole-cluster test bed: three namespaces listed in the
config, Deployments opted in by annotation to two policies (one with a min/max override), one
annotation broken, one Deployment not opted in, one opted-in Deployment in a namespace the config
does not list. The dry run's JSON is the plan (a namespace on every target, nothing changed);
the real pass, authenticated with a ServiceAccount token bound to exactly what `devscale
manifests cronjob` prints, scales the right ones, names the broken one, leaves the rest alone,
and writes each namespace's history ConfigMap and Events; `devscale status` with the same token
reads those Events back. Also: the README's platform-team recipe, per-team Slack routing, and
`config validate --online` running the fleet's own queries on the bed's Prometheus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import (
    TEST_WINDOW,
    Cluster,
    run_cli,
    service_account_kubeconfig,
    settle,
)

pytestmark = pytest.mark.integration

POLICY = "devscale.devtrip.io/policy"
CPU = {"name": "cpu", "preset": "cpu_utilization", "window": TEST_WINDOW}


@pytest.fixture
def teams(kube: Any) -> Iterator[list[Cluster]]:
    """Four fresh namespaces: three the fleet lists, one it does not."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    tag = uuid.uuid4().hex[:6]
    names = [f"team-{x}-{tag}" for x in ("a", "b", "c", "x")]
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={"created-by": "devscale-tests"})))
    yield [Cluster(kube, name) for name in names]
    for name in names:
        core.delete_namespace(name)


def fleet_config(path: Path, home: str, namespaces: list[str], prometheus_url: str) -> Path:
    doc = {
        "namespace": home,
        "prometheus": {"url": prometheus_url, "timeoutSeconds": 5},
        "namespaces": namespaces,
        "policies": {
            "web": {
                "scaling": {"minReplicas": 1, "maxReplicas": 10,
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
                "overrides": {"minReplicas": {"min": 1, "max": 4},
                              "maxReplicas": {"min": 2, "max": 20}},
                "metrics": [{**CPU, "target": {"type": "Utilization", "value": 70}}],
            },
            "worker": {
                "scaling": {"minReplicas": 1, "maxReplicas": 3},
                "metrics": [{**CPU, "target": {"type": "Utilization", "value": 50}}],
            },
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def apply_printed(api: Any, objects: list[dict[str, Any]]) -> None:
    """Create the printed objects as `kubectl apply` would, each in its own namespace."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api)
    for obj in objects:
        resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        dynamic.server_side_apply(resource, body=obj,
                                  namespace=obj["metadata"].get("namespace"),
                                  field_manager="devscale-tests", force_conflicts=True)


def test_one_fleet_pass_over_three_namespaces_with_the_printed_cluster_role(
        cluster: Cluster, teams: list[Cluster], exporter: SyntheticExporter,
        prometheus: Prometheus, controlplane: ControlPlane, tmp_path: Path) -> None:
    from kubernetes import client

    a, b, c, unlisted = teams
    # Loads far past the targets: a late scrape on a busy machine changes no outcome.
    a.deployment("api", 2, annotations={POLICY: "web", "devscale.devtrip.io/max-replicas": "4"})
    exporter.set_load(a.namespace, "api", pods=2, cpu_percent=300)       # → 9, its own max 4
    b.deployment("worker", 1, annotations={POLICY: "worker"})
    exporter.set_load(b.namespace, "worker", pods=1, cpu_percent=300)    # → 6, the policy's 3
    c.deployment("front", 2, annotations={POLICY: "web",
                                          "devscale.devtrip.io/min-replicas": "3"})
    exporter.set_load(c.namespace, "front", pods=2, cpu_percent=70)      # → 3 (its own min)
    c.deployment("broken", 2, annotations={POLICY: "web",
                                           "devscale.devtrip.io/max-replicas": "lots"})
    exporter.set_load(c.namespace, "broken", pods=2, cpu_percent=500)
    c.deployment("plain", 2)                                             # not opted in
    exporter.set_load(c.namespace, "plain", pods=2, cpu_percent=500)
    unlisted.deployment("api", 2, annotations={POLICY: "web"})
    exporter.set_load(unlisted.namespace, "api", pods=2, cpu_percent=500)
    cfg = fleet_config(tmp_path / "fleet.yaml", cluster.namespace,
                       [a.namespace, b.namespace, c.namespace], prometheus.url)

    printed = run_cli(["manifests", "cronjob", "-c", str(cfg)])
    assert printed.returncode == 0, printed.stderr
    objects = [d for d in yaml.safe_load_all(printed.stdout)
               if d and d["kind"] != "CronJob"]   # the job itself would run on a schedule
    apply_printed(cluster.api, objects)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    settle()

    plan = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json",
                    "--dry-run"])
    doc = json.loads(plan.stdout)
    planned = {(d["namespace"], d["name"]): d for d in doc["deployments"]}
    assert set(planned) == {(a.namespace, "api"), (b.namespace, "worker"),
                            (c.namespace, "front"), (c.namespace, "broken")}, plan.stdout
    assert planned[(a.namespace, "api")]["action"] == "would scale up"
    assert [q["metric"] for q in doc["queries"]] == ["cpu"]
    assert a.replicas("api") == 2 and c.replicas("front") == 2

    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json",
                    "--debug"])
    doc = json.loads(proc.stdout)
    assert proc.returncode == 5, proc.stdout + proc.stderr   # partial: the broken one
    requests = [t["request"] for t in doc["trace"] if t["kind"] == "kube"]
    # one list each across the cluster, the histories too; no read per namespace
    assert sum(r.startswith("list deployments -A") for r in requests) == 1, requests
    assert sum(r.startswith("list configmaps -A") for r in requests) == 1, requests
    assert not [r for r in requests if r.startswith("get configmaps")], requests
    results = {(d["namespace"], d["name"]): d for d in doc["deployments"]}
    assert (a.replicas("api"), b.replicas("worker"), c.replicas("front")) == (4, 3, 3)
    assert (c.replicas("broken"), c.replicas("plain"), unlisted.replicas("api")) == (2, 2, 2)
    broken = results[(c.namespace, "broken")]["error"]
    assert f"deployment {c.namespace}/broken" in broken
    assert "devscale.devtrip.io/max-replicas: 'lots' is not a whole number" in broken
    assert results[(c.namespace, "front")]["reason"] == "TooFewReplicas"
    assert results[(a.namespace, "api")]["reason"] == "TooManyReplicas"   # its override
    assert doc["warnings"] == [] and doc["historyError"] is None, doc

    core = client.CoreV1Api(cluster.api)
    for team, names in ((a, {"api"}), (b, {"worker"}), (c, {"front"})):
        history = core.read_namespaced_config_map("devscale-history", team.namespace).data
        kept = {json.loads(text)["deployment"] for key, text in (history or {}).items()
                if not key.startswith(".")}
        assert kept == names, (team.namespace, history)
        events = {(e.involved_object.name, e.reason)
                  for e in core.list_namespaced_event(team.namespace).items
                  if e.source.component == "devscale"}
        assert {(n, "Scaled") for n in names} <= events, events
    assert ("broken", "InvalidScalingPolicy") in {
        (e.involved_object.name, e.reason) for e in core.list_namespaced_event(c.namespace).items}
    assert not [e for e in core.list_namespaced_event(unlisted.namespace).items
                if e.source.component == "devscale"]

    # `status` with the same token reads each namespace's Events back: no warning, the why
    shown = run_cli(["status", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json"])
    assert shown.stdout, shown.stderr   # exit 5: the broken annotation is an error row
    doc = json.loads(shown.stdout)
    assert not [w for w in doc["warnings"] if "Events not read" in w], doc["warnings"]
    rows = {(d["namespace"], d["name"]): d for d in doc["deployments"]}
    for team, name in ((a, "api"), (b, "worker"), (c, "front")):
        row = rows[(team.namespace, name)]
        assert row["lastEvent"] is not None and row["lastEvent"]["reason"] == "Scaled", row
        assert row["lastScale"]["why"].startswith("Scaled from"), row


def readme_fleet_config() -> str:
    """The README's fleet config: the `yaml` block of the Deploy section that has policies."""
    import re

    from tests.readme import ROOT

    deploy = (ROOT / "README.md").read_text().split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", deploy, re.S) if "policies:" in b]
    return block


def test_readme_platform_team_recipe(kube: Any, exporter: SyntheticExporter,
                                     prometheus: Prometheus, admin_kubeconfig: Path,
                                     tmp_path: Path) -> None:
    """The Deploy section's platform-team recipe as written: its config, the printed set
    applied, a namespace labelled in, a Deployment annotated in, the plan, the pass, the
    status."""
    from kubernetes import client

    from tests.readme import recipe, run_recipe

    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": "team-a"}})
    try:
        team = Cluster(kube, "team-a")
        team.deployment("api", 2)                           # the team's own, before opting in
        exporter.set_load("team-a", "api", pods=2, cpu_percent=300)
        # as written but for the rate window: the bed's series are seconds old, not minutes
        (tmp_path / "fleet.yaml").write_text(readme_fleet_config().replace(
            "preset: cpu_utilization\n",
            f"preset: cpu_utilization\n        window: {TEST_WINDOW}\n"))
        settle()
        proc = run_recipe(recipe("fleet"), tmp_path, admin_kubeconfig,
                          env={"METRICS_SERVER": prometheus.url})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        plan = json.loads((tmp_path / "plan.json").read_text())
        [planned] = plan["deployments"]
        assert (planned["namespace"], planned["name"], planned["policy"], planned["action"]) \
            == ("team-a", "api", "web", "would scale up")
        assert team.replicas("api") > 2
        assert "api" in proc.stdout
        history = core.read_namespaced_config_map("devscale-history", "team-a").data
        assert any(json.loads(v)["deployment"] == "api" for v in history.values())
        rbac = client.RbacAuthorizationV1Api(kube)
        assert rbac.read_cluster_role("devscale-fleet-read").rules
    finally:
        core.delete_namespace("team-a")
        core.delete_namespace("platform")
        rbac = client.RbacAuthorizationV1Api(kube)
        for name in ("devscale-fleet-read", "devscale-fleet-write"):
            rbac.delete_cluster_role(name)
            rbac.delete_cluster_role_binding(name)


def test_notices_go_to_each_teams_own_slack_channel(
        cluster: Cluster, teams: list[Cluster], exporter: SyntheticExporter,
        prometheus: Prometheus, admin_kubeconfig: Path, tmp_path: Path) -> None:
    """`fleet.notifyRoute: {label: team}`: a namespace labelled team=alpha sends to
    $SLACK_WEBHOOK_ALPHA; one without its own variable to the config's $SLACK_WEBHOOK."""
    from kubernetes import client

    from testbed.receivers import SlackReceiver

    a, b, _, _ = teams
    core = client.CoreV1Api(cluster.api)
    core.patch_namespace(a.namespace, {"metadata": {"labels": {"team": "alpha"}}})
    core.patch_namespace(b.namespace, {"metadata": {"labels": {"team": "beta"}}})
    for team in (a, b):
        team.deployment("api", 2, annotations={POLICY: "web",
                                               "devscale.devtrip.io/max-replicas": "4"})
        exporter.set_load(team.namespace, "api", pods=2, cpu_percent=300)
    cfg = fleet_config(tmp_path / "fleet.yaml", cluster.namespace, [a.namespace, b.namespace],
                       prometheus.url)
    doc = yaml.safe_load(cfg.read_text())
    doc["fleet"] = {"notifyRoute": {"label": "team"}}
    cfg.write_text(yaml.safe_dump(doc))
    alpha, shared = SlackReceiver(), SlackReceiver()
    try:
        settle()
        proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig),
                        "-o", "json"],
                       env={"SLACK_WEBHOOK_ALPHA": alpha.url, "SLACK_WEBHOOK": shared.url})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (a.replicas("api"), b.replicas("api")) == (4, 4)
        to_alpha = json.dumps([r["body"] for r in alpha.requests])
        to_shared = json.dumps([r["body"] for r in shared.requests])
        assert f"{a.namespace}/api" in to_alpha and b.namespace not in to_alpha
        assert f"{b.namespace}/api" in to_shared and a.namespace not in to_shared
    finally:
        alpha.stop()
        shared.stop()


def test_config_validate_online_runs_the_fleet_queries_and_names_a_refused_one(
        exporter: SyntheticExporter, prometheus: Prometheus, tmp_path: Path) -> None:
    """`config validate --online` on a fleet config runs the fleet's own queries (one per
    metric, grouped by namespace and Deployment) on a real Prometheus: accepted with data;
    refused, named by file, line and the policy's field; accepted without data, a warning."""
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"team-a-{tag}", f"team-b-{tag}"]
    for ns in namespaces:
        exporter.set_load(ns, "api", pods=2, cpu_percent=140, memory_percent=50)
    cfg = fleet_config(tmp_path / "fleet.yaml", "platform", namespaces, prometheus.url)
    doc = yaml.safe_load(cfg.read_text())
    memory = {"name": "memory", "preset": "memory_utilization",
              "target": {"type": "Utilization", "value": 80}}
    doc["policies"]["worker"]["metrics"].append(memory)
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    settle()

    proc = run_cli(["config", "validate", "--online", "-c", str(cfg), "-o", "json"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["fleet"], shown["online"], shown["metrics"], shown["warnings"]) == (
        True, True, 2, []), shown

    # Valid PromQL offline, a function this Prometheus does not know; and a series nobody has.
    doc["policies"]["worker"]["metrics"] = [
        doc["policies"]["worker"]["metrics"][0],
        {"name": "broken", "query": 'sum by (deployment) (mad_over_time(x{namespace='
                                    '"{namespace}"}[5m]))',
         "target": {"type": "Value", "value": 1}},
        {"name": "quiet", "query": 'sum by (deployment) (nobody_has_this{namespace='
                                   '"{namespace}"})',
         "target": {"type": "Value", "value": 1}}]
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    lines = cfg.read_text().splitlines()
    broken = next(i for i, t in enumerate(lines, 1) if "mad_over_time" in t)
    quiet = next(i for i, t in enumerate(lines, 1) if "nobody_has_this" in t)
    proc = run_cli(["config", "validate", "--online", "-c", str(cfg)])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"{cfg}:{broken}: policies.worker.metrics[1].query: Prometheus refused the query" \
        in text, text
    assert f"{cfg}:{quiet}: policies.worker.metrics[2].query: accepted, but no data yet" \
        in text, text
    assert run_cli(["config", "validate", "-c", str(cfg)]).returncode == 0   # offline: fine
