"""`devscale workers submit`, `workers status` and `manifests workers` as separate processes:
submit puts the request on the real stream (and refuses what would be dead-lettered), status
shows tasks and pods from the real API server, and the manifests apply to it — their Role is
enough for a server to run the seed's flow with the ServiceAccount's own token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devtrip_scale.workers.config import load_workers_config
from devtrip_scale.workers.pods import worker_pod
from testbed.controlplane import ControlPlane
from tests.conftest import Cluster, run_cli, service_account_kubeconfig
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration


def test_submit_puts_requests_on_the_stream(workers: Workers) -> None:
    config = workers.configure()
    up = run_cli(["workers", "submit", "-c", str(config), "--pod-count", "2", "--task-id",
                  "build-7", "--meta", "branch=main", "--meta", "commit=abc"])
    assert up.returncode == 0, up.stderr
    down = run_cli(["workers", "submit", "-c", str(config), "--cancel", "--task-id", "build-7"])
    assert down.returncode == 0, down.stderr
    entries = workers.client().xrange(workers.stream)
    assert [i for i, _ in entries] == [up.stdout.strip(), down.stdout.strip()]
    assert entries[0][1] == {"type": "scale_up", "task_id": "build-7", "pod_count": "2",
                             "metadata": '{"branch":"main","commit":"abc"}'}
    assert entries[1][1] == {"type": "scale_down", "task_id": "build-7"}


@pytest.mark.parametrize(("args", "message"), [
    pytest.param([], "give --pod-count", id="nothing"),
    pytest.param(["--pod-count", "101"], "pod_count 101 is outside 1..100", id="over-cap"),
    pytest.param(["--pod-count", "1", "--meta", "novalue"], "--meta 'novalue': write key=value",
                 id="bad-meta"),
    pytest.param(["--pod-count", "1", "--meta", "9=x"], "metadata key '9'", id="bad-meta-key"),
    pytest.param(["--cancel"], "--cancel takes --task-id only", id="cancel-without-task"),
])
def test_submit_refuses_what_would_be_dead_lettered(workers: Workers, args: list[str],
                                                    message: str) -> None:
    config = workers.configure()
    r = run_cli(["workers", "submit", "-c", str(config), *args])
    assert r.returncode == 2 and message in r.stderr
    assert workers.client().exists(workers.stream) == 0          # nothing was added


def test_status_shows_tasks_and_pods(workers: Workers, cluster: Cluster,
                                     admin_kubeconfig: Path) -> None:
    from kubernetes import client

    config = workers.configure(run_seconds=300)
    template = load_workers_config(config, env={}).worker
    core = client.CoreV1Api(cluster.api)
    for index in range(2):
        core.create_namespaced_pod(cluster.namespace,
                                   worker_pod(template, "Build/9", index, 0, 2, "1-0"))
    core.create_namespaced_pod(cluster.namespace, worker_pod(template, "other", 0, 0, 1, "2-0"))
    base = ["workers", "status", "-c", str(config), "--kubeconfig", str(admin_kubeconfig)]
    r = run_cli([*base, "Build/9", "-o", "json"])
    assert r.returncode == 0, r.stderr
    [task] = json.loads(r.stdout)["tasks"]
    assert task["taskId"] == "Build/9" and [p["index"] for p in task["pods"]] == [0, 1]
    table = run_cli(base)
    assert table.returncode == 0, table.stderr
    assert "task Build/9: 2 pod(s)" in table.stdout and "task other: 1 pod(s)" in table.stdout


def test_manifests_apply_and_their_role_runs_the_flow(
        workers: Workers, cluster: Cluster, controlplane: ControlPlane, tmp_path: Path) -> None:
    config = workers.configure(run_seconds=1)
    r = run_cli(["manifests", "workers", "-c", str(config), "--replicas", "1"])
    assert r.returncode == 0, r.stderr
    objects = list(yaml.safe_load_all(r.stdout))
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding",
                                            "ConfigMap", "Deployment", "PodDisruptionBudget"]
    role = objects[1]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "list",
                                                              "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    [container] = objects[4]["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["workers", "serve"]
    spec = objects[4]["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert objects[5]["spec"]["minAvailable"] == 1
    default = list(yaml.safe_load_all(run_cli(["manifests", "workers", "-c",
                                               str(config)]).stdout))
    assert default[4]["spec"]["replicas"] == 2, "two replicas unless told otherwise"
    assert load_workers_config(config, env={}).namespace == cluster.namespace
    cluster.apply(objects)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml",
                                            account="devscale-workers")
    workers.start(kubeconfig=kubeconfig)
    workers.submit(type="scale_up", pod_count=2, task_id="with-its-own-role")
    pods = workers.wait_pods(2, "with-its-own-role")
    workers.log_pods(pods, lambda name: [f"{name} ok"])
    [result] = workers.wait_results(1, timeout=60)
    assert result["outcome"] == "succeeded"
    assert "forbidden" not in workers.servers[0].output()
    assert "ok" in (workers.logs_dir / "with-its-own-role.log").read_text()
