"""`devscale workers serve` end to end against real Redis and the whole-cluster test bed: the
seed's flow (a scale_up of 3 → pods created, run, logs kept, cleaned up, result on the results
stream), scale_down cancelling a running task, a failing worker retried then reported, bad
requests dead-lettered, the server SIGKILLed mid-task and restarted, two servers on one stream,
a dead consumer's entries reclaimed, Redis stopped and started, and RBAC missing for pods."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from testbed import kwok
from testbed.controlplane import ControlPlane
from testbed.net import wait_until
from tests.conftest import Cluster, service_account_kubeconfig
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration


def test_seed_flow_three_pods_run_logs_kept_cleaned_up_result_on_stream(
        workers: Workers) -> None:
    server = workers.start()
    entry = workers.submit(type="scale_up", pod_count=3, task_id="build-42",
                           metadata=json.dumps({"branch": "main"}))
    pods = workers.wait_pods(3, "build-42")
    names = sorted(p.metadata.name for p in pods)
    assert names == ["w-build-42-0-0", "w-build-42-1-0", "w-build-42-2-0"]
    pod = pods[0]
    container = pod.spec.containers[0]
    assert pod.spec.restart_policy == "Never" and pod.spec.active_deadline_seconds == 3600
    assert container.resources.limits == {"cpu": "100m", "memory": "64Mi"}
    assert container.resources.requests == {"cpu": "10m", "memory": "16Mi"}
    env = {e.name: e.value for e in container.env}
    assert env["DEVSCALE_META_BRANCH"] == "main" and env["DEVSCALE_TASK_ID"] == "build-42"
    assert pod.metadata.labels["meta.devscale.devtrip.io/branch"] == "main"
    workers.log_pods(pods, lambda name: [f"hello from {name}", "done"])
    [result] = workers.wait_results(1, timeout=60)
    assert result["task_id"] == "build-42" and result["outcome"] == "succeeded"
    assert result["pods_succeeded"] == "3" and result["request_entry"] == entry
    detail = json.loads(result["workers"])
    assert [w["exitCode"] for w in detail] == [0, 0, 0]
    wait_until(lambda: not workers.pods("build-42"), "the worker pods deleted", timeout=20)
    text = (workers.logs_dir / "build-42.log").read_text()
    for name in names:
        assert f"==> {name} " in text and f"hello from {name}" in text
    assert workers.pending() == 0
    metrics = server.metrics()
    assert 'devscale_workers_requests_total{result="acked",type="scale_up"} 1.0' in metrics
    assert 'devscale_workers_finished_total{outcome="succeeded"} 3.0' in metrics
    assert "devscale_workers_task_duration_seconds_count" in metrics
    assert server.stop() == 0


def test_scale_down_cancels_a_running_task(workers: Workers) -> None:
    workers.configure(run_seconds=120)
    workers.start()
    workers.submit(type="scale_up", pod_count=2, task_id="long-1")
    pods = workers.wait_pods(2, "long-1", phase="Running")
    workers.log_pods(pods, lambda name: [f"{name} working"])
    workers.submit(type="scale_down", task_id="long-1")
    [result] = workers.wait_results(1, timeout=30)
    assert result["outcome"] == "cancelled" and result["pods_succeeded"] == "0"
    assert {w["outcome"] for w in json.loads(result["workers"])} == {"cancelled"}
    wait_until(lambda: not workers.pods("long-1"), "the cancelled pods deleted", timeout=20)
    assert "working" in (workers.logs_dir / "long-1.log").read_text()   # read before deleting
    # the scale_down entry is acked once the cancel is recorded, which may follow the result
    wait_until(lambda: workers.pending() == 0, "both requests acked", timeout=10)


def test_a_failing_worker_is_retried_then_reported(workers: Workers, cluster: Cluster) -> None:
    from kubernetes import client

    from testbed.receivers import SlackReceiver

    slack = SlackReceiver()
    try:
        workers.configure(run_seconds=1, retry={"max_retries": 1},
                          worker={**workers.settings.get("worker", {}), **_failing()})
        workers.start(env={"SLACK_WEBHOOK": slack.url})
        workers.submit(type="scale_up", pod_count=1, task_id="flaky-7")
        [result] = workers.wait_results(1, timeout=60)
        [worker] = json.loads(result["workers"])
        assert result["outcome"] == "failed" and result["pods_failed"] == "1"
        assert worker["attempts"] == 2 and worker["exitCode"] == 3
        assert worker["pod"] == "w-flaky-7-0-1"          # the retry had its own name
        text = (workers.logs_dir / "flaky-7.log").read_text()
        assert "==> w-flaky-7-0-0 " in text and "==> w-flaky-7-0-1 " in text
        events = client.CoreV1Api(cluster.api).list_namespaced_event(cluster.namespace).items
        failed = [e for e in events if e.reason == "TaskFailed"]
        assert failed and "exit codes 3" in failed[0].message
        wait_until(lambda: len(slack.requests) == 1, "the Slack notification", timeout=15)
        body = json.dumps(slack.requests[0]["body"])
        assert "worker task flaky-7 failed" in body
        assert slack.path not in workers.servers[0].output()   # the webhook is a secret
    finally:
        slack.stop()


def _failing() -> dict[str, object]:
    return {"image": "registry.invalid/worker:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"cpu": "100m", "memory": "64Mi"}},
            "annotations": {kwok.RUN_SECONDS: "1", kwok.EXIT_CODE: "3"}}


@pytest.mark.parametrize(("fields", "reason"), [
    pytest.param({"type": "scale_sideways", "pod_count": "1"}, "is not scale_up or scale_down",
                 id="unknown-type"),
    pytest.param({"type": "scale_up", "pod_count": "three"}, "is not a whole number",
                 id="pod-count-not-a-number"),
    pytest.param({"type": "scale_up", "pod_cuont": "3"}, "unknown field(s) 'pod_cuont'",
                 id="misspelt-field"),
    pytest.param({"type": "scale_down"}, "needs the task_id", id="scale-down-without-task"),
    pytest.param({"type": "scale_up", "pod_count": "1", "metadata": "{not json"},
                 "metadata is not JSON", id="metadata-not-json"),
])
def test_bad_requests_are_dead_lettered_with_the_reason(
        workers: Workers, fields: dict[str, str], reason: str) -> None:
    server = workers.start()
    entry = workers.submit(**fields)
    wait_until(lambda: len(workers.dead()) == 1, "the dead-letter entry", timeout=15)
    [dead] = workers.dead()
    assert dead["entry_id"] == entry and reason in dead["reason"]
    assert all(dead[f"field.{k}"] == v for k, v in fields.items())
    assert workers.pending() == 0 and not workers.pods()
    assert server.process.poll() is None and server.healthz() == 200


def test_a_new_group_starts_at_the_end_of_the_stream(workers: Workers) -> None:
    workers.submit(type="scale_up", pod_count=1, task_id="before-the-group")
    workers.start()
    workers.submit(type="scale_up", pod_count=1, task_id="after")
    workers.wait_pods(1, "after")
    time.sleep(1)
    assert not workers.pods("before-the-group")


def test_sigkill_mid_task_and_restart_no_duplicate_no_lost_task(workers: Workers) -> None:
    workers.configure(run_seconds=4, limits={"max_workers": 2})
    first = workers.start(consumer="c1")
    workers.submit(type="scale_up", pod_count=2, task_id="a")
    workers.submit(type="scale_up", pod_count=2, task_id="b")    # waits for room: unacked
    workers.log_pods(workers.wait_pods(2, "a"), lambda name: [f"{name} ran"])
    wait_until(lambda: "wait for room" in first.output(), "task b queued", timeout=10)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert workers.pending() == 1                        # b's request is still pending
    workers.wait_pods(2, "a", phase="Succeeded", timeout=20)   # a ran on without a server
    workers.start(consumer="c1")
    pods_b = workers.wait_pods(2, "b", timeout=30)
    workers.log_pods(pods_b, lambda name: [f"{name} ran"])
    results = workers.wait_results(2, timeout=60)
    assert sorted(r["task_id"] for r in results) == ["a", "b"]
    for r in results:
        assert r["outcome"] == "succeeded"
        assert [w["attempts"] for w in json.loads(r["workers"])] == [1, 1]   # no duplicates
    time.sleep(2)
    assert len(workers.results()) == 2 and workers.pending() == 0
    text = (workers.logs_dir / "a.log").read_text()
    assert text.count("==> w-a-0-0 ") == 1 and text.count("==> w-a-1-0 ") == 1


def test_two_servers_share_the_stream_each_request_handled_once(workers: Workers) -> None:
    workers.configure(run_seconds=1)
    one, two = workers.start(consumer="c1"), workers.start(consumer="c2")
    tasks = [f"t{i}" for i in range(8)]
    for task in tasks:
        workers.submit(type="scale_up", pod_count=1, task_id=task)
    results = workers.wait_results(8, timeout=90)
    assert sorted(r["task_id"] for r in results) == tasks
    assert all(json.loads(r["workers"])[0]["attempts"] == 1 for r in results)
    time.sleep(2)
    assert len(workers.results()) == 8 and workers.pending() == 0

    def consumed(server: object) -> float:
        text = server.metrics()  # type: ignore[attr-defined]
        line = [x for x in text.splitlines() if x.startswith(
            'devscale_workers_requests_total{result="acked",type="scale_up"}')]
        return float(line[0].split()[-1]) if line else 0.0

    assert consumed(one) + consumed(two) == 8


def test_a_dead_consumers_entries_are_reclaimed(workers: Workers) -> None:
    workers.configure(run_seconds=1, redis={"claim_idle_seconds": 2})
    r = workers.client()
    r.xgroup_create(workers.stream, "workers", id="$", mkstream=True)
    entry = workers.submit(type="scale_up", pod_count=1, task_id="orphan")
    taken = r.xreadgroup("workers", "ghost", {workers.stream: ">"}, count=1)  # then "dies"
    assert taken[0][1][0][0] == entry
    workers.start(consumer="c2")
    [result] = workers.wait_results(1, timeout=30)
    assert result["task_id"] == "orphan" and result["reported_by"] == "c2"
    assert workers.pending() == 0


def test_redis_stopped_and_started_the_server_reconnects(
        workers: Workers, tmp_path: Path) -> None:
    from testbed.redis import Redis

    own = Redis(tmp_path / "redis").start()
    try:
        workers.redis = own
        workers.configure(run_seconds=1)
        server = workers.start()
        own.stop()
        wait_until(lambda: server.healthz() == 503, "/healthz not ready", timeout=30)
        own.start()
        wait_until(lambda: server.healthz() == 200, "/healthz ready again", timeout=60)
        workers.submit(type="scale_up", pod_count=1, task_id="after-outage")
        [result] = workers.wait_results(1, timeout=30)
        assert result["outcome"] == "succeeded"
        assert server.process.poll() is None and "reconnecting" in server.output()
    finally:
        own.stop()


def test_rbac_missing_for_pods_is_named_and_the_request_stays_unacked(
        workers: Workers, cluster: Cluster, controlplane: ControlPlane, tmp_path: Path) -> None:
    from kubernetes import client

    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "delete"]},
             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    cluster.grant(rules)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    ns = cluster.namespace
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    workers.configure(run_seconds=1)
    server = workers.start(kubeconfig=kubeconfig)
    workers.submit(type="scale_up", pod_count=1, task_id="denied")
    wait_until(lambda: "cannot create pods/w-denied-0-0" in server.output(),
               "the RBAC error", timeout=20)
    assert 'resources: ["pods"], verbs: ["create"]' in server.output()
    assert workers.pending() == 1 and not workers.pods()
    rules[0]["verbs"] = ["create", *rules[0]["verbs"]]     # granted: it goes through
    rbac.patch_namespaced_role("w", ns, {"rules": rules})
    [result] = workers.wait_results(1, timeout=60)
    assert result["outcome"] == "succeeded" and workers.pending() == 0


def test_sigterm_finishes_in_flight_work_and_leaves_the_rest_unacked(workers: Workers) -> None:
    workers.configure(run_seconds=120, limits={"max_workers": 1},
                      redis={"claim_idle_seconds": 2})
    first = workers.start(consumer="c1")
    workers.submit(type="scale_up", pod_count=1, task_id="running")
    workers.wait_pods(1, "running")
    workers.submit(type="scale_up", pod_count=1, task_id="waiting")   # no room: unacked
    wait_until(lambda: "wait for room" in first.output(), "the second request queued",
               timeout=10)
    started = time.monotonic()
    assert first.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10                # within the grace period
    assert "1 request(s) left unacked for other consumers" in first.output()
    assert workers.pending() == 1 and len(workers.pods("running")) == 1   # pods left running
    second = workers.start(consumer="c2")                 # another consumer takes it over
    workers.submit(type="scale_down", task_id="running")   # room for it
    workers.wait_pods(1, "waiting", timeout=30)
    assert "reading" in second.output()
    wait_until(lambda: workers.pending() == 0, "all acked", timeout=20)


def test_task_state_lost_in_redis_is_rebuilt_from_the_pods(workers: Workers) -> None:
    workers.configure(run_seconds=6)
    server = workers.start()
    workers.submit(type="scale_up", pod_count=2, task_id="survivor",
                   metadata=json.dumps({"branch": "main"}))
    pods = workers.wait_pods(2, "survivor")
    workers.log_pods(pods, lambda name: [f"{name} ran"])
    r = workers.client()
    [key] = r.keys(f"{workers.stream}:task:*")
    r.delete(key)                                  # as a Redis restarted without persistence
    [result] = workers.wait_results(1, timeout=60)
    assert result["outcome"] == "succeeded" and result["pods_succeeded"] == "2"
    assert "state rebuilt from pod" in server.output()
    assert "ran" in (workers.logs_dir / "survivor.log").read_text()
