"""What devscale guarantees when things around it break, proven on the real servers: one writer
at a time (the Lease), no fighting (paused, HPA, KEDA, GitOps resets), Events, outages of
Prometheus and the API server (stopped or paused for real), and secrets that never show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtrip_scale.kube.lease import LeaseLock
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.net import free_port
from testbed.prometheus import Prometheus
from testbed.receivers import QueueEndpoint
from tests.conftest import ROOT, Cluster, run_cli, settle, write_config

pytestmark = pytest.mark.integration

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


def check(cfg: Path, kubeconfig: Path, *extra: str,
          env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json",
                    *extra], env=env)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def events(cluster: Cluster, name: str) -> list[Any]:
    """devscale's Events on one Deployment (the controller-manager records its own too)."""
    from kubernetes import client

    from devtrip_scale.scaling.events import COMPONENT

    items = client.CoreV1Api(cluster.api).list_namespaced_event(cluster.namespace).items
    return [e for e in items if e.involved_object.name == name
            and e.source.component == COMPONENT]


@pytest.fixture
def hot_api(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
            tmp_path: Path) -> Path:
    """Deployment `api` at 2 replicas, memory at 200 % of an 80 % target: it wants 5."""
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    settle()
    return write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                        [{"deployment": "api"}], minReplicas=2, maxReplicas=10)


@pytest.fixture
def slow_queue() -> Iterator[str]:
    """A queue endpoint that takes 4 s to say 5 jobs wait: each run stays busy that long."""
    queue = QueueEndpoint(waiting=5, delay=4)
    yield queue.url
    queue.stop()


def test_three_simultaneous_checks_exactly_one_writes(cluster: Cluster, prometheus: Prometheus,
                                                      slow_queue: str, admin_kubeconfig: Path,
                                                      tmp_path: Path) -> None:
    cluster.deployment("worker", 2)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url,
                       [{"name": "jobs", "http": {"url": slow_queue, "field": "waiting"},
                         "target": {"type": "AverageValue", "value": 1}}],
                       [{"deployment": "worker"}], minReplicas=1, maxReplicas=10)
    args = [sys.executable, "-m", "devtrip_scale", "check", "-c", str(cfg),
            "--kubeconfig", str(admin_kubeconfig), "-o", "json"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(3)]
    outcomes = [(p.wait(timeout=60), p.communicate()) for p in procs]
    assert sorted(code for code, _ in outcomes) == [0, 6, 6], outcomes
    [(out, _)] = [streams for code, streams in outcomes if code == 0]
    assert json.loads(out)["deployments"][0]["applied"] is True
    assert cluster.replicas("worker") == 5
    assert [e.reason for e in events(cluster, "worker")] == ["Scaled"]
    for code, (_, err) in outcomes:
        if code == 6:
            assert ("Lease" in err and "changes nothing" in " ".join(err.split())) or \
                "same moment" in err or "just created" in err


def test_a_live_lease_holder_blocks_and_is_named(cluster: Cluster, hot_api: Path,
                                                 admin_kubeconfig: Path) -> None:
    holder = LeaseLock(cluster.api, cluster.namespace, identity="jenkins-agent-7")
    holder.acquire()
    code, _, err = check(hot_api, admin_kubeconfig)
    assert code == 6
    assert "jenkins-agent-7, since" in " ".join(err.split())
    assert cluster.replicas("api") == 2
    holder.release()
    assert check(hot_api, admin_kubeconfig)[0] == 0
    assert cluster.replicas("api") == 5


def test_the_lease_is_released_on_sigterm(cluster: Cluster, exporter: SyntheticExporter,
                                          admin_kubeconfig: Path, tmp_path: Path) -> None:
    # A Prometheus that accepts connections and never answers keeps the run busy.
    import socket

    from kubernetes import client
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    cluster.deployment("api", 2)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace,
                       f"http://127.0.0.1:{hung.getsockname()[1]}", [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    proc = subprocess.Popen([sys.executable, "-m", "devtrip_scale", "check", "-c", str(cfg),
                             "--kubeconfig", str(admin_kubeconfig)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    api = client.CoordinationV1Api(cluster.api)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if api.read_namespaced_lease("devscale-lock", cluster.namespace).spec.holder_identity:
                break
        except client.ApiException:
            pass
        time.sleep(0.1)
    time.sleep(0.5)                      # well inside the run: waiting on Prometheus
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    hung.close()
    assert proc.returncode == 130
    assert api.read_namespaced_lease("devscale-lock", cluster.namespace).spec.holder_identity \
        is None


def test_paused_deployment_is_left_alone(cluster: Cluster, exporter: SyntheticExporter,
                                         prometheus: Prometheus, admin_kubeconfig: Path,
                                         tmp_path: Path) -> None:
    cluster.deployment("api", 2, annotations={"devscale.devtrip.io/paused": "true"})
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 0
    assert doc["deployments"][0]["action"] == "skipped"
    assert "devscale.devtrip.io/paused" in doc["deployments"][0]["skipped"]
    assert cluster.replicas("api") == 2


@pytest.mark.parametrize(("hpa_name", "labels", "named"), [
    ("api-hpa", {}, "HorizontalPodAutoscaler api-hpa"),
    ("keda-hpa-api-queue", {"scaledobject.keda.sh/name": "api-queue"},
     "KEDA ScaledObject api-queue"),
])
def test_deployment_scaled_by_an_hpa_is_skipped(cluster: Cluster, hot_api: Path,
                                                admin_kubeconfig: Path, hpa_name: str,
                                                labels: dict[str, str], named: str) -> None:
    from kubernetes import client

    client.AutoscalingV2Api(cluster.api).create_namespaced_horizontal_pod_autoscaler(
        cluster.namespace, {
            "metadata": {"name": hpa_name, "labels": labels},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "api"},
                     "minReplicas": 1, "maxReplicas": 3,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 50}}}]}})
    code, doc, _ = check(hot_api, admin_kubeconfig)
    assert code == 0
    assert named in doc["deployments"][0]["skipped"]
    assert cluster.replicas("api") == 2
    assert [e.type for e in events(cluster, "api")] == ["Warning"]


def test_replicas_reset_behind_devscales_back_are_reported(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("api", 2, labels={"app.kubernetes.io/instance": "devtrip-prod"})
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 0 and cluster.replicas("api") == 5
    assert any("Argo CD tracks this Deployment" in w for w in doc["deployments"][0]["warnings"])
    cluster.set_replicas("api", 2)           # a GitOps sync puts the manifest's 2 back
    code, doc, _ = check(cfg, admin_kubeconfig)
    [warning] = [w for w in doc["deployments"][0]["warnings"] if "last wrote" in w]
    assert "replicas are 2, but devscale last wrote 5" in warning
    assert "ignore /spec/replicas" in warning


def test_a_change_is_recorded_as_a_normal_event(cluster: Cluster, hot_api: Path,
                                                admin_kubeconfig: Path) -> None:
    assert check(hot_api, admin_kubeconfig)[0] == 0
    [event] = events(cluster, "api")
    assert (event.type, event.reason, event.source.component) == ("Normal", "Scaled", "devscale")
    assert event.message.startswith("Scaled from 2 to 5: memory 200 against a target of 80")
    assert event.involved_object.kind == "Deployment" and event.involved_object.uid


def test_prometheus_down_bounded_and_nothing_shrinks(cluster: Cluster, admin_kubeconfig: Path,
                                                     tmp_path: Path) -> None:
    cluster.deployment("api", 6)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, f"http://127.0.0.1:{free_port()}",
                       [MEMORY], [{"deployment": "api"}], minReplicas=1, maxReplicas=10)
    start = time.monotonic()
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 3
    assert time.monotonic() - start < 10
    assert "cannot connect to Prometheus" in doc["metricErrors"]["memory"]
    assert doc["deployments"][0]["reason"] == "NoMetrics"
    assert cluster.replicas("api") == 6


@pytest.fixture(scope="module")
def own_prometheus(exporter: SyntheticExporter, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Prometheus]:
    """A Prometheus of this module's own, to pause and stop without harming the others."""
    prom = Prometheus(tmp_path_factory.mktemp("own-prometheus"), exporter.port).start()
    yield prom
    if prom.process is not None:
        prom.process.send_signal(signal.SIGCONT)
    prom.stop()


def test_prometheus_paused_times_out_within_bound(cluster: Cluster, exporter: SyntheticExporter,
                                                  own_prometheus: Prometheus,
                                                  admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("api", 6)
    exporter.set_load(cluster.namespace, "api", pods=6, memory_percent=10)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, own_prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=1, maxReplicas=10)
    cfg.write_text(cfg.read_text().replace("timeout_seconds: 5", "timeout_seconds: 1.5"))
    assert own_prometheus.process is not None
    own_prometheus.process.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        code, doc, _ = check(cfg, admin_kubeconfig)
        elapsed = time.monotonic() - start
    finally:
        own_prometheus.process.send_signal(signal.SIGCONT)
    assert code == 3
    assert "did not answer within 1.5s" in doc["metricErrors"]["memory"]
    assert elapsed < 8
    assert cluster.replicas("api") == 6


def test_stale_series_is_missing_not_zero(cluster: Cluster, exporter: SyntheticExporter,
                                          prometheus: Prometheus, admin_kubeconfig: Path,
                                          tmp_path: Path) -> None:
    ns = cluster.namespace
    cluster.deployment("api", 6)
    cluster.deployment("web", 2)
    exporter.set_load(ns, "api", pods=6, memory_percent=80)
    exporter.set_load(ns, "web", pods=2, memory_percent=80)
    users = {"name": "users", "target": {"type": "AverageValue", "value": 100},
             "query": 'sum by (deployment) (devtrip:active_users_total{namespace="{namespace}"})'}
    exporter.set_load(ns, "api", pods=6, memory_percent=10, active_users=50)
    exporter.set_load(ns, "web", pods=2, memory_percent=80, active_users=150)
    settle()
    exporter.set_load(ns, "api", pods=6, memory_percent=10)   # api's user series goes stale
    settle()
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY, users],
                       [{"deployment": "api"}, {"deployment": "web"}], minReplicas=1,
                       maxReplicas=10, behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})
    code, doc, _ = check(cfg, admin_kubeconfig)
    assert code == 0
    api = next(d for d in doc["deployments"] if d["name"] == "api")
    assert api["reason"] == "MissingMetrics"
    assert cluster.replicas("api") == 6


@pytest.fixture(scope="module")
def own_controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A kube-apiserver of this module's own, to pause without harming the others."""
    cp = ControlPlane(tmp_path_factory.mktemp("own-controlplane")).start()
    yield cp
    if cp.process is not None:
        cp.process.send_signal(signal.SIGCONT)
    cp.stop()


def test_api_server_paused_is_bounded_and_clear(own_controlplane: ControlPlane,
                                                prometheus: Prometheus, tmp_path: Path) -> None:
    kubeconfig = own_controlplane.kubeconfig(tmp_path / "kubeconfig")
    cfg = write_config(tmp_path / "c.yaml", "default", prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=1, maxReplicas=10)
    assert own_controlplane.process is not None
    own_controlplane.process.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig)])
        elapsed = time.monotonic() - start
    finally:
        own_controlplane.process.send_signal(signal.SIGCONT)
    assert proc.returncode == 4, proc.stderr
    assert "API server unreachable or too slow" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 25   # one 15 s read timeout, not the client's default four


def test_secrets_never_show(cluster: Cluster, hot_api: Path, admin_kubeconfig: Path) -> None:
    from kubernetes import client

    canary = "canary-s3cr3t-7f1d"
    hot_api.write_text(hot_api.read_text().replace(
        "timeout_seconds: 5", "timeout_seconds: 5\n  bearer_token_env: PROM_TOKEN"))
    env = {"PROM_TOKEN": canary}
    code, doc, err = check(hot_api, admin_kubeconfig, "--debug", env=env)
    assert code == 0 and cluster.replicas("api") == 5
    shown = [json.dumps(doc), err,
             run_cli(["check", "-c", str(hot_api), "--kubeconfig", str(admin_kubeconfig),
                      "--debug", "--dry-run"], env=env).stdout,
             run_cli(["config", "show", "-c", str(hot_api)], env=env).stdout]
    core = client.CoreV1Api(cluster.api)
    shown += [e.message for e in core.list_namespaced_event(cluster.namespace).items]
    shown += [json.dumps(cm.data) for cm in core.list_namespaced_config_map(
        cluster.namespace).items]
    assert all(canary not in text for text in shown)
    assert os.environ.get("PROM_TOKEN") is None
