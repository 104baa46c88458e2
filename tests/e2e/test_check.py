"""`devscale check` end to end against a real Prometheus and a real kube-apiserver.

Covers: scale up and down on CPU, memory, a custom AverageValue metric and queue depth; dry-run;
one PromQL query per metric whatever the number of Deployments; absent and NaN readings never
shrink; the 403 message; the JSON document; the in-process Typer runner.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devtrip_scale.cli import app
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import NOW, ROOT, TEST_WINDOW, Cluster, run_cli, settle, write_config

pytestmark = pytest.mark.integration

CPU = {"name": "cpu", "preset": "cpu_utilization", "window": TEST_WINDOW,
       "target": {"type": "Utilization", "value": 70}}
MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}
USERS = {"name": "active_users",
         "query": 'sum by (deployment) (devtrip:active_users_total{namespace="{namespace}"})',
         "target": {"type": "AverageValue", "value": 100}}
NO_DOWN_WINDOW = {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}


def check(cfg: Path, kubeconfig: Path, *extra: str, now: Any = None) -> tuple[int, dict[str, Any]]:
    args = ["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json", *extra]
    if now is not None:
        args += ["--now", now.strftime("%Y-%m-%dT%H:%M:%S%z")]
    proc = run_cli(args)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_scales_up_on_cpu(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
                          admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, cpu_percent=140)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [CPU],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    code, doc = check(cfg, admin_kubeconfig)
    assert code == 0, doc
    assert cluster.replicas("api") == 4
    [d] = doc["deployments"]
    assert (d["currentReplicas"], d["desiredReplicas"], d["action"]) == (2, 4, "scaled up")
    assert d["metrics"][0]["replicas"] == 4 and 139 <= d["metrics"][0]["reading"] <= 141


@pytest.mark.parametrize(("metric", "load"), [
    pytest.param(MEMORY, {"memory_percent": 20}, id="memory"),   # ceil(6 × 20 / 80) = 2
    pytest.param(CPU, {"cpu_percent": 20}, id="cpu"),            # ceil(6 × 20 / 70) = 2
])
def test_scales_down(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
                     admin_kubeconfig: Path, tmp_path: Path, metric: dict[str, Any],
                     load: dict[str, float]) -> None:
    cluster.deployment("web", 6)
    exporter.set_load(cluster.namespace, "web", pods=6, **load)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [metric],
                       [{"deployment": "web"}], minReplicas=1, maxReplicas=10, **NO_DOWN_WINDOW)
    settle()
    code, doc = check(cfg, admin_kubeconfig)
    assert code == 0, doc
    assert cluster.replicas("web") == 2


def test_scales_up_and_down_on_a_custom_average_value(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("front", 2)
    exporter.set_load(cluster.namespace, "front", pods=2, active_users=450)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [USERS],
                       [{"selector": "app=front"}], minReplicas=1, maxReplicas=10,
                       **NO_DOWN_WINDOW)
    settle()
    assert check(cfg, admin_kubeconfig)[0] == 0
    assert cluster.replicas("front") == 5  # ceil(450 / 100)
    exporter.set_load(cluster.namespace, "front", pods=5, active_users=120)
    settle()
    assert check(cfg, admin_kubeconfig)[0] == 0
    assert cluster.replicas("front") == 2  # ceil(120 / 100)


def test_queue_depth_with_the_seed_config(cluster: Cluster, exporter: SyntheticExporter,
                                          prometheus: Prometheus, admin_kubeconfig: Path,
                                          tmp_path: Path) -> None:
    """config/queue-workers.yaml: 60 s scale-up window, +100 % per 60 s, at most 3 pods."""
    cluster.deployment("queue-worker", 1)
    exporter.set_gauge("devtrip_queue_waiting_jobs", 5, namespace=cluster.namespace, queue="jobs")
    settle()
    env_cfg = ROOT / "config" / "queue-workers.yaml"
    env = {"NAMESPACE": cluster.namespace, "METRICS_SERVER": prometheus.url.removeprefix("http://")}
    steps = []
    for offset in (0, 61, 122):
        at = NOW + timedelta(seconds=offset)
        proc = run_cli(["check", "-c", str(env_cfg), "--kubeconfig", str(admin_kubeconfig),
                        "-o", "json", "--now", at.strftime("%Y-%m-%dT%H:%M:%S%z")], env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        steps.append((cluster.replicas("queue-worker"),
                      json.loads(proc.stdout)["deployments"][0]["reason"]))
    exporter.set_gauge("devtrip_queue_waiting_jobs", None, namespace=cluster.namespace,
                       queue="jobs")
    # first sight: the seeded window holds 1; then +100 % per 60 s; then the max of 3
    assert steps == [(1, "ScaleUpStabilized"), (2, "ScaleUpLimit"), (3, "TooManyReplicas")]


def test_dry_run_changes_nothing(cluster: Cluster, exporter: SyntheticExporter,
                                 prometheus: Prometheus, admin_kubeconfig: Path,
                                 tmp_path: Path) -> None:
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    code, doc = check(cfg, admin_kubeconfig, "--dry-run")
    assert code == 0
    assert doc["deployments"][0]["desiredReplicas"] == 5
    assert doc["deployments"][0]["action"] == "would scale up"
    assert cluster.replicas("api") == 2
    from kubernetes import client
    names = [c.metadata.name for c in client.CoreV1Api(cluster.api).list_namespaced_config_map(
        cluster.namespace).items]
    assert "devscale-history" not in names


@pytest.mark.parametrize("deployments", [1, 20])
def test_one_query_per_metric_whatever_the_number_of_deployments(
        deployments: int, cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    for i in range(deployments):
        cluster.deployment(f"svc-{i}", 2, labels={"tier": "api"})
        exporter.set_load(cluster.namespace, f"svc-{i}", pods=2, memory_percent=80,
                          cpu_percent=70, active_users=200)
    metrics = [CPU, MEMORY, USERS]
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, metrics,
                       [{"selector": "tier=api"}], minReplicas=1, maxReplicas=10)
    settle()
    before = prometheus.instant_queries_served()
    code, doc = check(cfg, admin_kubeconfig)
    after = prometheus.instant_queries_served()
    assert code == 0, doc
    assert len(doc["deployments"]) == deployments
    assert after - before == len(metrics)


def test_absent_and_nan_readings_never_shrink(cluster: Cluster, exporter: SyntheticExporter,
                                              prometheus: Prometheus, admin_kubeconfig: Path,
                                              tmp_path: Path) -> None:
    ns = cluster.namespace
    cluster.deployment("nan", 4)
    cluster.deployment("absent", 4)
    for name in ("nan", "absent"):
        exporter.set_load(ns, name, pods=4, memory_percent=10)  # memory alone says: shrink
    exporter.set_gauge("devtrip_custom_load", float("nan"), namespace=ns, deployment="nan")
    custom = {"name": "custom", "target": {"type": "AverageValue", "value": 10},
              "query": 'sum by (deployment) (devtrip_custom_load{namespace="{namespace}"})'}
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY, custom],
                       [{"deployment": "nan"}, {"deployment": "absent"}], minReplicas=1,
                       maxReplicas=10, **NO_DOWN_WINDOW)
    settle()
    code, doc = check(cfg, admin_kubeconfig)
    assert code == 0, doc
    assert (cluster.replicas("nan"), cluster.replicas("absent")) == (4, 4)
    reasons = {d["name"]: d["reason"] for d in doc["deployments"]}
    assert reasons == {"nan": "MissingMetrics", "absent": "MissingMetrics"}
    # With the custom series gone entirely, the query is empty: a metrics error, still no shrink.
    exporter.set_gauge("devtrip_custom_load", None, namespace=ns, deployment="nan")
    settle()
    code, doc = check(cfg, admin_kubeconfig)
    assert code == 3
    assert "custom" in doc["metricErrors"]
    assert (cluster.replicas("nan"), cluster.replicas("absent")) == (4, 4)


def test_forbidden_scale_names_verb_and_resource(
        cluster: Cluster, controlplane: ControlPlane, exporter: SyntheticExporter,
        prometheus: Prometheus, tmp_path: Path) -> None:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(cluster.namespace, {
        "metadata": {"name": "devscale-without-scale"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["configmaps"],
             "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "create", "update"]},
            {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
             "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        ]})
    rbac.create_namespaced_role_binding(cluster.namespace, {
        "metadata": {"name": "devscale-without-scale"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "devscale-without-scale"},
        "subjects": [{"kind": "User", "name": "limited", "apiGroup": "rbac.authorization.k8s.io"}],
    })
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    kubeconfig = controlplane.kubeconfig(tmp_path / "limited.yaml", user="limited")
    settle()
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json"])
    assert proc.returncode == 4, proc.stdout + proc.stderr
    [result] = json.loads(proc.stdout)["deployments"]
    assert result["action"] == "failed"
    assert "cannot patch deployments/scale/api" in result["error"]
    assert 'resources: ["deployments/scale"], verbs: ["patch"]' in result["error"]
    assert "Traceback" not in proc.stderr
    assert cluster.replicas("api") == 2


def test_in_process_runner_and_debug_output(cluster: Cluster, exporter: SyntheticExporter,
                                            prometheus: Prometheus, admin_kubeconfig: Path,
                                            tmp_path: Path) -> None:
    cluster.deployment("api", 3)
    exporter.set_load(cluster.namespace, "api", pods=3, memory_percent=80)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    result = CliRunner().invoke(app, ["check", "-c", str(cfg), "--kubeconfig",
                                      str(admin_kubeconfig), "--debug"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "WithinTolerance" in text
    assert "container_memory_working_set_bytes" in text      # the PromQL
    assert f"list deployments -n {cluster.namespace}" in text  # the API calls
    assert cluster.replicas("api") == 3


def test_queue_depth_from_a_json_endpoint(cluster: Cluster, prometheus: Prometheus,
                                          admin_kubeconfig: Path, tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Queue(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"queue": "jobs", "waiting": 2}).encode()
            self.send_response(200 if self.path == "/metrics/waiting-jobs" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Queue)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics/waiting-jobs"
    cluster.deployment("worker", 1)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url,
                       [{"name": "waiting_jobs", "http": {"url": url, "field": "waiting"},
                         "target": {"type": "AverageValue", "value": 1}}],
                       [{"deployment": "worker"}], minReplicas=1, maxReplicas=3)
    try:
        code, doc = check(cfg, admin_kubeconfig)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, doc
    assert cluster.replicas("worker") == 2
    assert doc["deployments"][0]["metrics"][0]["reading"] == 2


def test_config_validate_online_names_the_query_prometheus_rejects(
        prometheus: Prometheus, tmp_path: Path) -> None:
    # Valid PromQL (it parses offline), but a function this Prometheus (2.x) does not know.
    cfg = write_config(tmp_path / "c.yaml", "devtrip", prometheus.url,
                       [MEMORY, {"name": "broken", "query": "sum by (deployment) (mad_over_time("
                                 "x[5m]))", "target": {"type": "Value", "value": 1}}],
                       [{"deployment": "api"}])
    proc = run_cli(["config", "validate", "--online", "-c", str(cfg)])
    assert proc.returncode == 2
    text = " ".join(proc.stderr.split())
    line = cfg.read_text().splitlines().index(
        "  query: sum by (deployment) (mad_over_time(x[5m]))") + 1
    assert f"{cfg}:{line}: metrics[1].query: Prometheus refused the query" in text
    # Without --online the same file is valid: only Prometheus can tell.
    assert run_cli(["config", "validate", "-c", str(cfg)]).returncode == 0


def test_seed_thresholds_scale_2_to_4_at_cpu_140(cluster: Cluster, exporter: SyntheticExporter,
                                                 prometheus: Prometheus, admin_kubeconfig: Path,
                                                 tmp_path: Path) -> None:
    """config/devtrip.yaml as shipped, but for the rate window: a series a few seconds old
    cannot fill the 2 m window, so the rate presets read over 5 s here."""
    import yaml

    seed = yaml.safe_load((ROOT / "config" / "devtrip.yaml").read_text())
    for metric in seed["metrics"]:
        if metric.get("preset") in ("cpu_utilization", "http_requests_per_second",
                                    "http_p95_latency_seconds"):
            metric["window"] = TEST_WINDOW
    cfg = tmp_path / "devtrip.yaml"
    cfg.write_text(yaml.safe_dump(seed))
    cluster.deployment("api", 2, labels={"app.kubernetes.io/part-of": "devtrip"})
    exporter.set_load(cluster.namespace, "api", pods=2, cpu_percent=140, memory_percent=50,
                      rps=120, p95_seconds=0.4, active_users=150)
    settle()
    env = {"NAMESPACE": cluster.namespace, "METRICS_SERVER": prometheus.url.removeprefix("http://")}
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig), "-o", "json"],
                   env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [d] = json.loads(proc.stdout)["deployments"]
    assert (d["currentReplicas"], d["desiredReplicas"], d["decidingMetric"]) == (2, 4, "cpu")
    assert cluster.replicas("api") == 4
