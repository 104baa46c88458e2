"""The test bed's cluster against its real components (kube-apiserver, controller-manager,
scheduler, KWOK nodes): Deployments get Ready pods and follow a scale, capacity runs out into
Pending pods with the scheduler's FailedScheduling, annotated pods end Succeeded or Failed with
their exit code after the requested time, Jobs complete, and the binaries report the release."""

from __future__ import annotations

import time
from typing import Any

import pytest

from testbed import kwok
from testbed.controlplane import ControlPlane, kubernetes_version, ldflags
from testbed.net import wait_until
from tests.conftest import Cluster

NODE_NAMES = {node.name for node in kwok.NODES}


def pods(cluster: Cluster) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(cluster.api).list_namespaced_pod(cluster.namespace).items)


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_ldflags_give_the_pinned_release() -> None:
    assert kubernetes_version() == "v1.34.4"
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in ldflags()
    assert "-X k8s.io/component-base/version.gitMinor=34" in ldflags()


@pytest.mark.integration
def test_api_server_reports_the_pinned_release(controlplane: ControlPlane) -> None:
    assert controlplane.api("GET", "/version")["gitVersion"] == kubernetes_version()


@pytest.mark.integration
def test_nodes_have_their_stated_capacity(controlplane: ControlPlane) -> None:
    nodes = {n["metadata"]["name"]: n for n in controlplane.api("GET", "/api/v1/nodes")["items"]}
    for spec in kwok.NODES:
        status = nodes[spec.name]["status"]
        assert status["allocatable"] == {"cpu": spec.cpu, "memory": spec.memory,
                                         "pods": str(spec.pods)}
        assert status["nodeInfo"]["kubeletVersion"] == f"kwok-{kwok.VERSION.lstrip('v')}"


@pytest.mark.integration
def test_deployment_of_three_gets_three_ready_pods(cluster: Cluster) -> None:
    cluster.deployment("api", 3, ready=False)
    cluster.wait_ready("api", 3)
    running = pods(cluster)
    assert len(running) == 3
    assert all(is_ready(p) and p.spec.node_name in NODE_NAMES for p in running)


@pytest.mark.integration
def test_scaling_changes_the_ready_count(cluster: Cluster) -> None:
    cluster.deployment("api", 2, ready=False)
    cluster.wait_ready("api", 2)
    cluster.set_replicas("api", 5)
    cluster.wait_ready("api", 5)
    cluster.set_replicas("api", 1)
    cluster.wait_ready("api", 1)
    wait_until(lambda: len(pods(cluster)) == 1, "scaled-down pods gone", timeout=30)


@pytest.mark.integration
def test_deployment_larger_than_the_nodes_leaves_pods_pending(cluster: Cluster) -> None:
    from kubernetes import client

    # 3 nodes of 4 CPUs hold 6 pods asking 2 CPUs each; the other 2 cannot be placed.
    cluster.deployment("big", 8, cpu="2", ready=False)
    wait_until(lambda: sum(is_ready(p) for p in pods(cluster)) == 6, "6 of 8 pods Ready",
               timeout=60)

    def failed_scheduling() -> list[Any]:
        return [e for e in client.CoreV1Api(cluster.api).list_namespaced_event(
            cluster.namespace).items if e.reason == "FailedScheduling"]

    # the ReplicaSet creates its pods in slow-start batches (1, 2, 4, …): wait for the 8th
    wait_until(lambda: len(pods(cluster)) == 8, "8 pods", timeout=30)
    pending = [p for p in pods(cluster) if p.status.phase == "Pending"]
    assert len(pending) == 2 and all(p.spec.node_name is None for p in pending)
    names = {p.metadata.name for p in pending}

    def events_of_pending() -> list[Any]:
        # a pod placed later (once an earlier test's pods let go of their CPU) may have an
        # event too: only those of the pods still Pending are about these 2
        return [e for e in failed_scheduling() if e.involved_object.name in names]

    wait_until(lambda: {e.involved_object.name for e in events_of_pending()} == names,
               "a FailedScheduling event for each Pending pod", timeout=30)
    for event in events_of_pending():
        assert event.type == "Warning"
        assert "0/3 nodes are available" in event.message
        assert "Insufficient cpu" in event.message
    apps = client.AppsV1Api(cluster.api)

    def counts() -> tuple[int, int]:
        status = apps.read_namespaced_deployment_status("big", cluster.namespace).status
        return status.replicas, status.ready_replicas

    wait_until(lambda: counts() == (8, 6), "deployment status: 8 replicas, 6 Ready", timeout=30)


def terminated(cluster: Cluster, name: str, timeout: float = 30) -> Any:
    """Wait for pod `name` to end; its container's terminated state."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    wait_until(lambda: core.read_namespaced_pod(name, cluster.namespace).status.phase
               in ("Succeeded", "Failed"), f"pod {name} ended", timeout=timeout)
    pod = core.read_namespaced_pod(name, cluster.namespace)
    [status] = pod.status.container_statuses
    return pod.status.phase, status.state.terminated


@pytest.mark.integration
@pytest.mark.parametrize(("exit_code", "phase", "reason"), [
    pytest.param(None, "Succeeded", "Completed", id="no-exit-code-succeeds"),
    pytest.param(0, "Succeeded", "Completed", id="exit-0-succeeds"),
    pytest.param(42, "Failed", "Error", id="exit-42-fails"),
])
def test_annotated_pod_runs_for_its_time_then_ends(cluster: Cluster, exit_code: int | None,
                                                   phase: str, reason: str) -> None:
    started = time.monotonic()
    cluster.pod("task", run_seconds=2, exit_code=exit_code)
    ended_phase, state = terminated(cluster, "task")
    assert time.monotonic() - started >= 2
    assert ended_phase == phase
    assert (state.exit_code, state.reason) == (exit_code or 0, reason)
    assert (state.finished_at - state.started_at).total_seconds() >= 2


@pytest.mark.integration
@pytest.mark.parametrize(("attempt", "exit_code", "phase", "code"), [
    pytest.param(0, None, "Failed", 1, id="attempt-0-fails-with-1"),
    pytest.param(0, 3, "Failed", 3, id="attempt-0-fails-with-its-exit-code"),
    pytest.param(1, 3, "Succeeded", 0, id="attempt-1-succeeds"),
    pytest.param(2, None, "Succeeded", 0, id="later-attempts-succeed"),
])
def test_pod_fails_its_first_attempts_then_succeeds(cluster: Cluster, attempt: int,
                                                    exit_code: int | None, phase: str,
                                                    code: int) -> None:
    from kubernetes import client

    notes = {kwok.RUN_SECONDS: "1", kwok.FAIL_ATTEMPTS: "1",
             **({kwok.EXIT_CODE: str(exit_code)} if exit_code is not None else {})}
    client.CoreV1Api(cluster.api).create_namespaced_pod(cluster.namespace, {
        "metadata": {"name": "flaky", "annotations": notes,
                     "labels": {"devscale.devtrip.io/attempt": str(attempt)}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "app", "image": "registry.invalid/app:1"}]}})
    ended_phase, state = terminated(cluster, "flaky")
    assert (ended_phase, state.exit_code) == (phase, code)


@pytest.mark.integration
def test_unannotated_pod_keeps_running(cluster: Cluster) -> None:
    from kubernetes import client

    client.CoreV1Api(cluster.api).create_namespaced_pod(cluster.namespace, {
        "metadata": {"name": "server"},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}})
    wait_until(lambda: any(is_ready(p) for p in pods(cluster)), "pod Ready", timeout=30)
    time.sleep(2)
    [pod] = pods(cluster)
    assert pod.status.phase == "Running" and is_ready(pod)


@pytest.mark.integration
def test_job_completes(cluster: Cluster) -> None:
    from kubernetes import client

    cluster.job("batch", run_seconds=1, completions=2)
    batch = client.BatchV1Api(cluster.api)

    def complete() -> bool:
        conditions = batch.read_namespaced_job_status("batch", cluster.namespace).status.conditions
        return any(c.type == "Complete" and c.status == "True" for c in conditions or [])

    wait_until(complete, "job batch Complete", timeout=60)
    assert batch.read_namespaced_job_status("batch", cluster.namespace).status.succeeded == 2


@pytest.mark.integration
def test_failing_job_fails(cluster: Cluster) -> None:
    from kubernetes import client

    cluster.job("broken", exit_code=3)
    batch = client.BatchV1Api(cluster.api)

    def failed() -> bool:
        status = batch.read_namespaced_job_status("broken", cluster.namespace).status
        return any(c.type == "Failed" and c.status == "True" for c in status.conditions or [])

    wait_until(failed, "job broken Failed", timeout=60)
    [pod] = pods(cluster)
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
