"""The ready-pod count and the cluster's capacity, on the whole cluster (controller-manager,
scheduler, KWOK nodes): checks back to back do not scale up twice on the old pods' readings,
whether the new pods are Ready at once or after a while (the HPA multiplies by ready pods, counts
unready ones as idle on a scale-up, and ready pods without samples as missing: idle on a
scale-up); a real increase of the load still scales up again; and pods the scheduler cannot place
are said everywhere and hold further scale-ups."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import kwok
from testbed.exporter import SyntheticExporter
from testbed.net import wait_until
from testbed.prometheus import Prometheus
from testbed.receivers import SlackReceiver
from tests.conftest import Cluster, run_cli, settle, write_config

pytestmark = pytest.mark.integration

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


def deployment(cluster: Cluster, name: str, replicas: int, *, pod_annotations: dict[str, str]
               | None = None, node: str | None = None, cpu: str | None = None) -> None:
    """A Deployment whose pods may carry annotations (KWOK's ready delay), a node and a CPU
    request (to run out of room on purpose)."""
    from kubernetes import client

    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/app:1"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if node:
        pod_spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    client.AppsV1Api(cluster.api).create_namespaced_deployment(cluster.namespace, {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name},
                                           "annotations": pod_annotations or {}},
                              "spec": pod_spec}}})


def check(cfg: Path, kubeconfig: Path, env: dict[str, str] | None = None
          ) -> tuple[int, dict[str, Any]]:
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json"],
                   env=env)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.stop()


def test_two_checks_back_to_back_scale_up_once(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    # Every pod takes 30 s to be Ready (KWOK's ready delay): after the scale-up, the load is
    # still the old pods'.
    deployment(cluster, "api", 2, pod_annotations={kwok.READY_SECONDS: "30"})
    cluster.wait_ready("api", 2, timeout=90)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    code, first = check(cfg, admin_kubeconfig)
    assert code == 0, first
    assert cluster.replicas("api") == 5                    # ceil(2.5 × 2 ready)
    code, second = check(cfg, admin_kubeconfig)
    assert code == 0, second
    [api] = second["deployments"]
    assert api["readyReplicas"] == 2
    assert cluster.replicas("api") == 5                    # not 10: 3 unready pods count as idle
    assert api["desiredReplicas"] == 5


@pytest.mark.parametrize("ready_seconds", [None, "15"], ids=["ready-at-once", "ready-after-15s"])
def test_checks_back_to_back_on_the_old_pods_readings_scale_once(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path, ready_seconds: str | None) -> None:
    # Pods without a readiness probe are Ready at once (KWOK's default); Prometheus's aggregate
    # still comes from the 2 pods that reported before the scale-up, and says so: the preset's
    # pod count is 2. groupPods: the 3 Ready pods without samples count as 0 % on a scale-up.
    annotations = {kwok.READY_SECONDS: ready_seconds} if ready_seconds else None
    deployment(cluster, "api", 2, pod_annotations=annotations)
    cluster.wait_ready("api", 2, timeout=90)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=20)
    code, first = check(cfg, admin_kubeconfig)
    assert code == 0, first
    assert cluster.replicas("api") == 5                    # ceil(200 / 80 × 2)
    if ready_seconds is None:
        cluster.wait_ready("api", 5)                       # Ready before the next cron run
    for _ in range(2):                                     # runs 2 and 3, back to back
        code, later = check(cfg, admin_kubeconfig)
        assert code == 0, later
        [api] = later["deployments"]
        assert (api["desiredReplicas"], cluster.replicas("api")) == (5, 5), api
    if ready_seconds is not None:                          # and once the new pods are Ready
        cluster.wait_ready("api", 5, timeout=90)
        code, later = check(cfg, admin_kubeconfig)
        [api] = later["deployments"]
        assert (api["readyReplicas"], api["desiredReplicas"]) == (5, 5), api
    # A real increase: all 5 pods report now, at 200 % each: 13 wanted (the rate policy may
    # allow fewer at once)
    exporter.set_load(cluster.namespace, "api", pods=5, memory_percent=200)
    settle()
    code, grown = check(cfg, admin_kubeconfig)
    assert code == 0, grown
    [api] = grown["deployments"]
    assert api["recommendation"] == 13, api
    assert cluster.replicas("api") > 5


def test_pods_that_cannot_be_scheduled_are_said_and_hold_scale_ups(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, slack: SlackReceiver, tmp_path: Path) -> None:
    from kubernetes import client

    # Two pods of 2 CPUs fill one 4-CPU node: every further pod stays Pending.
    deployment(cluster, "api", 2, node=kwok.NODES[0].name, cpu="2")
    cluster.wait_ready("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=400)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=20)
    env = {"SLACK_WEBHOOK": slack.url}
    code, first = check(cfg, admin_kubeconfig, env)
    assert code == 0, first
    assert cluster.replicas("api") == 6                    # 2 → 6: the default scale-up limit
    core = client.CoreV1Api(cluster.api)

    def four_unschedulable() -> bool:
        pods = core.list_namespaced_pod(cluster.namespace,
                                        field_selector="status.phase=Pending").items
        return sum(1 for p in pods for c in p.status.conditions or ()
                   if c.type == "PodScheduled" and c.reason == "Unschedulable") == 4

    wait_until(four_unschedulable, "4 pods Pending as Unschedulable", timeout=60)
    code, second = check(cfg, admin_kubeconfig, env)
    assert code == 0, second
    [api] = second["deployments"]
    assert api["reason"] == "ScaleUpUnschedulable", api
    assert api["capacity"].startswith("capacity: 4 of 6 pods unschedulable for 0 min: 0/3 nodes "
                                      "are available")
    assert cluster.replicas("api") == 6                    # not scaling into a full cluster
    reasons = [e.reason for e in core.list_namespaced_event(cluster.namespace).items
               if e.involved_object.name == "api" and e.source.component == "devscale"]
    assert "Unschedulable" in reasons
    told = json.dumps([r["body"] for r in slack.requests])
    assert "api: pods cannot be scheduled" in told
