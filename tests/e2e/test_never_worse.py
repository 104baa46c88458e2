"""Never make it worse, on the real servers: readings that make no sense (negative, an unlabelled
series among labelled ones) never shrink and fail the metrics; a scale-to-zero worker wakes on
its first job; history follows the Deployment's UID; a refused history write fails the run and is
told; the Lease is renewed through a long pass, a runner that loses it writes nothing, and every
contention message names the holder; a hung Prometheus costs one timeout, not one per metric.

The ready-pod count (the HPA's `readyPodCount`) is proven on the whole cluster in
`test_ready_pods.py`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtrip_scale.core.errors import LeaseHeld
from devtrip_scale.kube.lease import LeaseLock, micro_time
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.net import wait_until
from testbed.prometheus import Prometheus
from testbed.receivers import QueueEndpoint, SlackReceiver
from tests.conftest import ROOT, Cluster, run_cli, service_account_kubeconfig, settle, write_config
from tests.scaling.sources.test_routing import hung_prometheus  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration


def check(cfg: Path, kubeconfig: Path, *extra: str, env: dict[str, str] | None = None
          ) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json",
                    *extra], env=env)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


@pytest.fixture
def queue() -> Iterator[QueueEndpoint]:
    endpoint = QueueEndpoint()
    yield endpoint
    endpoint.stop()


def jobs(queue: QueueEndpoint, kind: str = "AverageValue", value: float = 1) -> dict[str, Any]:
    return {"name": "jobs", "http": {"url": queue.url, "field": "waiting"},
            "target": {"type": kind, "value": value}}


def with_timeout(cfg: Path, seconds: float) -> Path:
    doc = yaml.safe_load(cfg.read_text())
    doc["prometheus"]["timeout_seconds"] = seconds
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


# Bad readings ------------------------------------------------------------------------------

def test_a_queue_answering_minus_4_never_shrinks_the_workers(
        cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("worker", 3)
    queue.waiting = -4
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [jobs(queue)],
                       [{"deployment": "worker"}], minReplicas=1, maxReplicas=10)
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 3, doc
    assert cluster.replicas("worker") == 3
    assert "field 'waiting' is -4: a negative reading is not a load" in doc["metricErrors"]["jobs"]
    [worker] = doc["deployments"]
    assert (worker["desiredReplicas"], worker["reason"]) == (3, "NoMetrics")


def test_a_negative_promql_reading_is_named_and_fails_the_metrics(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("worker", 3)
    cluster.deployment("mailer", 3)
    ns = cluster.namespace
    exporter.set_gauge("devtrip_test_backlog", -4, namespace=ns, deployment="worker")
    exporter.set_gauge("devtrip_test_backlog", 0, namespace=ns, deployment="mailer")
    settle()
    metric = {"name": "backlog", "query": 'devtrip_test_backlog{namespace="{namespace}"}',
              "target": {"type": "AverageValue", "value": 1}}
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [metric],
                       [{"deployment": "worker"}, {"deployment": "mailer"}],
                       minReplicas=1, maxReplicas=10,
                       behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 3, doc
    assert doc["metricErrors"] == {
        "backlog": "invalid readings, not used: worker: negative reading -4 is not a load"}
    assert cluster.replicas("worker") == 3     # held on the nonsense
    assert cluster.replicas("mailer") == 1     # a real 0 still scales down


def test_an_unlabelled_series_among_labelled_ones_sizes_nothing(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    # label_replace yields an empty `deployment` for the pod it does not match; Prometheus
    # drops the empty label, and that series once lent its 900 to `web`, which has no pods here
    cluster.deployment("api", 2)
    cluster.deployment("web", 2)
    ns = cluster.namespace
    exporter.set_gauge("devtrip_test_pod_users", 300, namespace=ns, pod="api-5d8f9-x1")
    exporter.set_gauge("devtrip_test_pod_users", 900, namespace=ns, pod="batch-7")
    settle()
    promql = ('sum by (deployment) (label_replace(devtrip_test_pod_users{namespace="{namespace}"}'
              ', "deployment", "$1", "pod", "(api)-.*"))')
    metric = {"name": "users", "query": promql, "target": {"type": "AverageValue", "value": 100}}
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [metric],
                       [{"deployment": "api"}, {"deployment": "web"}], minReplicas=1,
                       maxReplicas=20)
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 3, doc
    error = doc["metricErrors"]["users"]
    assert "mixes 1 series with a `deployment` label and 1 without one" in error
    assert "query: sum by (deployment) (label_replace(devtrip_test_pod_users" in error
    assert (cluster.replicas("api"), cluster.replicas("web")) == (2, 2)


@pytest.mark.parametrize("kind", ["Value", "AverageValue"])
def test_a_scale_to_zero_worker_wakes_on_its_first_job(
        cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint, admin_kubeconfig: Path,
        tmp_path: Path, kind: str) -> None:
    # replica_calculator.go getUsageRatioReplicaCount: from 0 replicas, ceil(usageRatio)
    cluster.deployment("worker", 0)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url,
                       [jobs(queue, kind, 5)], [{"deployment": "worker"}], minReplicas=0,
                       maxReplicas=3)
    assert check(cfg, admin_kubeconfig)[0] == 0
    assert cluster.replicas("worker") == 0          # nothing waits: stays asleep
    queue.waiting = 1
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 0, doc
    assert cluster.replicas("worker") == 1


# History -------------------------------------------------------------------------------------

def history_data(cluster: Cluster) -> dict[str, str]:
    from kubernetes import client

    cm = client.CoreV1Api(cluster.api).read_namespaced_config_map("devscale-history",
                                                                  cluster.namespace)
    return dict(cm.data or {})


def uid_of(cluster: Cluster, name: str) -> str:
    from kubernetes import client

    return str(client.AppsV1Api(cluster.api).read_namespaced_deployment(
        name, cluster.namespace).metadata.uid)


def test_a_deployment_created_again_under_its_name_starts_afresh(
        cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint, admin_kubeconfig: Path,
        tmp_path: Path) -> None:
    from kubernetes import client

    cluster.deployment("api", 2)
    queue.waiting = 5
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [jobs(queue)],
                       [{"deployment": "api"}], minReplicas=1, maxReplicas=10)
    assert check(cfg, admin_kubeconfig)[0] == 0
    old_uid = uid_of(cluster, "api")
    assert old_uid in history_data(cluster)
    client.AppsV1Api(cluster.api).delete_namespaced_deployment("api", cluster.namespace)
    cluster.deployment("api", 3)
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 0, doc
    [api] = doc["deployments"]
    assert api["warnings"] == []                       # not "reset behind devscale's back"
    data = history_data(cluster)
    new_uid = uid_of(cluster, "api")
    assert old_uid not in data                         # the gone Deployment's entry is pruned
    assert json.loads(data[new_uid])["deployment"] == "api"
    assert json.loads(data[new_uid])["lastWritten"] == 5


def test_a_refused_history_write_fails_the_run_and_is_told(
        cluster: Cluster, controlplane: ControlPlane, prometheus: Prometheus,
        queue: QueueEndpoint, tmp_path: Path) -> None:
    from kubernetes import client

    ns = cluster.namespace
    client.CoreV1Api(cluster.api).create_namespaced_service_account(
        ns, {"metadata": {"name": "devscale"}})
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": "no-history"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},   # no create/patch
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
         "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "no-history"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "no-history"},
        "subjects": [{"kind": "ServiceAccount", "name": "devscale", "namespace": ns}]})
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    cluster.deployment("worker", 1)
    queue.waiting = 4
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [jobs(queue)],
                       [{"deployment": "worker"}], minReplicas=1, maxReplicas=10)
    slack = SlackReceiver()
    try:
        code, doc, _ = check(cfg, kubeconfig, env={"SLACK_WEBHOOK": slack.url})
    finally:
        slack.stop()
    assert code == 4, doc
    assert cluster.replicas("worker") == 4             # the scaling stands
    assert "cannot create configmaps/devscale-history" in doc["historyError"]
    [message] = [r["body"] for r in slack.requests]
    assert "devscale could not save its history" in json.dumps(message)


# The Lease -----------------------------------------------------------------------------------

def slow_check(cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint, kubeconfig: Path,
               tmp_path: Path, *, lease: str) -> subprocess.Popen[str]:
    """`check` on a worker at 1 replica, sized by the queue (set its delay first), running."""
    cluster.deployment("worker", 1)
    cfg = with_timeout(write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url,
                                    [jobs(queue)], [{"deployment": "worker"}], minReplicas=1,
                                    maxReplicas=10), queue.delay + 7)
    return subprocess.Popen(
        [sys.executable, "-m", "devtrip_scale", "check", "-c", str(cfg), "--kubeconfig",
         str(kubeconfig), "-o", "json", "--lease-duration", lease],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_the_lease_is_renewed_through_a_pass_longer_than_it(
        cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint, admin_kubeconfig: Path,
        tmp_path: Path) -> None:
    # A 6 s Lease, a queue that answers after 13 s: unrenewed, others may take it at 6 + 5 s.
    queue.waiting, queue.delay = 3, 13
    proc = slow_check(cluster, prometheus, queue, admin_kubeconfig, tmp_path, lease="6s")
    time.sleep(12)
    second = LeaseLock(cluster.api, cluster.namespace, identity="second-runner")
    with pytest.raises(LeaseHeld, match="holds Lease"):
        second.acquire()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert cluster.replicas("worker") == 3


def test_a_runner_that_loses_its_lease_mid_pass_writes_nothing(
        cluster: Cluster, prometheus: Prometheus, queue: QueueEndpoint, admin_kubeconfig: Path,
        tmp_path: Path) -> None:
    from kubernetes import client

    queue.waiting, queue.delay = 6, 5
    proc = slow_check(cluster, prometheus, queue, admin_kubeconfig, tmp_path, lease="9s")
    leases = client.CoordinationV1Api(cluster.api)
    wait_until(lambda: queue.gets > 0, "the run holds the Lease and waits for the queue")
    lease = leases.read_namespaced_lease("devscale-lock", cluster.namespace)
    assert lease.spec.holder_identity
    now = micro_time(datetime.now(UTC))
    leases.replace_namespaced_lease("devscale-lock", cluster.namespace, {
        "metadata": {"name": "devscale-lock",
                     "resourceVersion": lease.metadata.resource_version},
        "spec": {"holderIdentity": "operator-by-hand", "leaseDurationSeconds": 300,
                 "acquireTime": now, "renewTime": now, "leaseTransitions": 1}})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, out + err
    doc = json.loads(out)
    [worker] = doc["deployments"]
    assert worker["applied"] is False
    assert "lost the Lease mid-pass" in worker["error"]
    assert "operator-by-hand, since" in worker["error"]
    assert cluster.replicas("worker") == 1


def test_every_contention_message_names_the_holder(cluster: Cluster) -> None:
    # Eight runners race for a Lease that does not exist yet: one creates it; the others lose
    # on the live-holder path or at the same moment (409 on create or update). Each says who.
    lost: list[str] = []
    won: list[str] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        lock = LeaseLock(cluster.api, cluster.namespace, identity=f"runner-{i}",
                         name="race-lock")
        barrier.wait()
        try:
            lock.acquire()
            won.append(lock.identity)
        except LeaseHeld as e:
            lost.append(str(e))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [winner] = won
    assert len(lost) == 7
    for message in lost:
        assert f"{winner}, since 20" in message, message


# Bounded time --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["check", "-o", "json"], ["config", "validate", "--online"]])
def test_a_hung_prometheus_costs_one_timeout_for_all_five_metrics(
        cluster: Cluster, hung_prometheus: str, admin_kubeconfig: Path,  # noqa: F811
        command: list[str]) -> None:
    cluster.deployment("api", 2, labels={"app.kubernetes.io/part-of": "devtrip"})
    host = hung_prometheus.removeprefix("http://")
    start = time.monotonic()
    kube = ["--kubeconfig", str(admin_kubeconfig)] if command[0] == "check" else []
    proc = run_cli([*command, "-c", str(ROOT / "config" / "devtrip.yaml"), *kube],
                   env={"METRICS_SERVER": host, "NAMESPACE": cluster.namespace})
    took = time.monotonic() - start
    assert proc.returncode in (2, 3), proc.stdout + proc.stderr
    assert took < 10 + 8, took      # the seed's 10 s timeout once, not 5 × 10 s
    if command[0] == "check":
        doc = json.loads(proc.stdout)
        assert len(doc["metricErrors"]) == 5
        assert all("did not answer within 10s" in e for e in doc["metricErrors"].values())
