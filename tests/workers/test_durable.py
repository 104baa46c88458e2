"""Builds a CI server can depend on (issue 21), with real processes only: `devscale workers
serve` replicas sharing one Redis and one namespace (each its own gRPC API over real TLS), the
whole-cluster test bed's KWOK pods, `devscale pipeline run` as the CI job's client, a real
SIGKILL and a real SIGTERM.

Pins: a 3-stage build survives its owner's SIGKILL (adopted within the lease TTL plus a few
seconds, every stage run once, the attached client finishes with the build's exit code and a
contiguous sequence); a rollout (start C, SIGTERM A) cancels nothing and its client sees no
error; replica B serves status, attach, logs and cancel of A's build and a resubmission to B
attaches; a stage that ended (or whose pod vanished) while no replica watched finishes (or fails
with a named reason) within seconds; `pipeline run --build-id` shows every log line in 20 of 20
runs; a finished build's logs (and its stages' worker logs) are served by a replica that never
ran it, after its pods are gone; one results entry per build; through Redis Sentinel, a build
outlives a Redis restart with AOF, and its master's SIGKILL with a failover to its replica."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from devtrip_scale.workers import BUILD_LABEL
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from testbed import kwok
from testbed.net import free_port, wait_until
from tests.conftest import ROOT, Cluster
from tests.workers.conftest import Server, Workers
from tests.workers.test_e2e import TOKEN, pipeline_file, stage, tls_files

pytestmark = pytest.mark.integration

LEASE = 3            # pipelines.lease_seconds of the replicas here


@dataclass
class Fleet:
    """Replicas of `devscale workers serve` on one Redis, each with its API address."""

    workers: Workers
    ca: Path
    replicas: dict[str, tuple[Server, str]] = field(default_factory=dict)

    def start(self, name: str) -> str:
        port = free_port()
        server = self.workers.start(consumer=name, env={"DEVSCALE_API_TOKEN": TOKEN},
                                    args=["--api-listen", f"127.0.0.1:{port}"])
        address = f"localhost:{port}"
        self.replicas[name] = (server, address)
        return address

    def server(self, name: str) -> Server:
        return self.replicas[name][0]

    def address(self, name: str) -> str:
        return self.replicas[name][1]

    def channel(self, name: str) -> grpc.Channel:
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(self.ca.read_bytes()),
            grpc.access_token_call_credentials(TOKEN))
        return grpc.secure_channel(self.address(name), creds)

    def otto(self, name: str) -> pb_grpc.OttoscalerServiceStub:
        return pb_grpc.OttoscalerServiceStub(self.channel(name))

    def logs(self, name: str) -> pb_grpc.LogStreamingServiceStub:
        return pb_grpc.LogStreamingServiceStub(self.channel(name))

    def run(self, path: Path, build_id: str, *servers: str) -> subprocess.Popen[str]:
        """`devscale pipeline run FILE --build-id ID -o json --server a --server b …` as the CI
        job (each replica its own `--server`, the repeated form; test_client pins `a,b`)."""
        servers_given = [word for s in servers for word in ("--server", self.address(s))]
        return subprocess.Popen(
            [sys.executable, "-m", "devtrip_scale", "pipeline", "run", str(path), *servers_given,
             "--ca", str(self.ca), "--build-id", build_id, "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, "DEVSCALE_API_TOKEN": TOKEN})

    def owner(self, build_id: str) -> str | None:
        value = self.workers.client().get(f"{self.workers.tag}:requests:build:{build_id}:lease")
        return None if value is None else str(value).split(":")[0]


@pytest.fixture
def fleet(workers: Workers, tmp_path: Path) -> Iterator[Fleet]:
    tls = tls_files(tmp_path)
    workers.configure(run_seconds=2, api={"enabled": True, "tls": tls},
                      pipelines={"lease_seconds": LEASE, "adopt_seconds": 0.5},
                      shutdown_grace_seconds=5)
    yield Fleet(workers, tmp_path / "ca.pem")


def finished(run: subprocess.Popen[str], timeout: float = 120) -> tuple[int, list[dict[str, Any]],
                                                                          str]:
    out, err = run.communicate(timeout=timeout)
    return run.returncode, [json.loads(line) for line in out.splitlines() if line.strip()], err


def progress_of(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for x in lines if x["type"] == "progress"]


def stage_pods_seen(fleet: Fleet, build_id: str, seen: set[str], stop: threading.Event) -> None:
    while not stop.is_set():
        seen.update(p.metadata.name for p in build_pods_of(fleet, build_id))
        time.sleep(0.2)


def build_pods_of(fleet: Fleet, build_id: str) -> list[Any]:
    from kubernetes import client

    cluster = fleet.workers.cluster
    return list(client.CoreV1Api(cluster.api).list_namespaced_pod(
        cluster.namespace, label_selector=f"{BUILD_LABEL}={build_id}").items)


def wait_stage_running(fleet: Fleet, build_id: str, stage_name: str, timeout: float = 30) -> Any:
    def running() -> list[Any]:
        return [p for p in build_pods_of(fleet, build_id)
                if p.metadata.labels.get("devscale.devtrip.io/stage") == stage_name
                and p.status.phase == "Running"]

    wait_until(lambda: bool(running()), f"stage {stage_name} running", timeout=timeout)
    return running()[0]


def three_stages(tmp_path: Path, name: str, slow_ready: bool = False,
                 middle_seconds: float = 6) -> Path:
    middle = stage("s2", middle_seconds, ("s1",))
    if slow_ready:
        middle["annotations"][kwok.READY_SECONDS] = "2"
    return pipeline_file(tmp_path / f"{name}.yaml", [stage("s1", 2), middle,
                                                     stage("s3", 2, ("s2",))])


def assert_each_stage_ran_once(lines: list[dict[str, Any]], pods: set[str]) -> None:
    progress = progress_of(lines)
    assert [p["sequence"] for p in progress] == list(range(1, len(progress) + 1)), \
        "a contiguous sequence: no gap, no repeat"
    final = {s["name"]: s for s in progress[-1]["stages"]}
    assert {n: (s["state"], s["attempt"]) for n, s in final.items()} == {   # attempt 0: the first
        "s1": ("succeeded", 0), "s2": ("succeeded", 0), "s3": ("succeeded", 0)}
    assert not [p for p in progress if p["stageState"] == "cancelled"]
    # one pod per stage, attempt 0: nothing ran twice
    assert len(pods) == 3 and all(p.endswith("-0-0") for p in pods), pods


@pytest.mark.parametrize("slow_ready", [False, True], ids=["ready-at-once", "ready-after-2s"])
def test_a_3_stage_build_survives_its_owners_sigkill(fleet: Fleet, tmp_path: Path,
                                                     slow_ready: bool) -> None:
    fleet.start("a")
    fleet.start("b")
    path = three_stages(tmp_path, "kill", slow_ready)
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=stage_pods_seen, args=(fleet, "kill-1", seen, stop),
                               daemon=True)
    watcher.start()
    client = fleet.run(path, "kill-1", "a", "b")        # attached to A first
    wait_stage_running(fleet, "kill-1", "s2")
    assert fleet.owner("kill-1") == "a"
    killed = time.monotonic()
    fleet.server("a").process.send_signal(signal.SIGKILL)
    wait_until(lambda: fleet.owner("kill-1") == "b", "B adopts the build",
               timeout=LEASE + 5)
    adopted = time.monotonic() - killed
    code, lines, err = finished(client)
    stop.set()
    watcher.join()
    assert code == 0, err
    assert_each_stage_ran_once(lines, seen)
    [result] = [x for x in lines if x["type"] == "result"]
    assert result["state"] == "succeeded" and result["exitCode"] == 0
    assert any("adopted by b" in p["message"] for p in progress_of(lines))
    print(f"adopted {adopted:.1f}s after the SIGKILL (lease {LEASE}s)")
    assert adopted < LEASE + 3
    results = fleet.workers.wait_results(1)
    assert [r["build_id"] for r in results] == ["kill-1"], "reported once"


def test_a_rollout_cancels_nothing_and_the_client_sees_no_error(fleet: Fleet,
                                                                 tmp_path: Path) -> None:
    fleet.start("a")
    # s2 outlasts C's start even on a loaded machine (~10 s at load 14): A still drives it
    path = three_stages(tmp_path, "roll", middle_seconds=20)
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=stage_pods_seen, args=(fleet, "roll-1", seen, stop),
                               daemon=True)
    watcher.start()
    port_c = free_port()       # the Service's next endpoint, known before C is up
    fleet.replicas["c"] = (fleet.server("a"), f"localhost:{port_c}")
    client = fleet.run(path, "roll-1", "a", "c")
    wait_stage_running(fleet, "roll-1", "s2")
    # as a Deployment's rolling update does it: the new replica C first, then A's SIGTERM
    server_c = fleet.workers.start(consumer="c", env={"DEVSCALE_API_TOKEN": TOKEN},
                                   args=["--api-listen", f"127.0.0.1:{port_c}"])
    fleet.replicas["c"] = (server_c, f"localhost:{port_c}")
    assert fleet.owner("roll-1") == "a"
    assert fleet.server("a").stop(signal.SIGTERM) == 0
    code, lines, err = finished(client)
    stop.set()
    watcher.join()
    assert code == 0, err
    assert "error" not in err.lower() and "stopped" not in err.lower(), err
    assert_each_stage_ran_once(lines, seen)
    assert any("adopted by c" in p["message"] for p in progress_of(lines))
    assert "handing 1 running build(s) over" in fleet.server("a").output()
    assert [r["build_id"] for r in fleet.workers.wait_results(1)] == ["roll-1"]


def test_replica_b_serves_status_attach_logs_and_cancel_of_a_build_owned_by_a(
        fleet: Fleet, cluster: Cluster, tmp_path: Path) -> None:
    fleet.start("a")
    fleet.start("b")
    path = pipeline_file(tmp_path / "b.yaml", [stage("long", 60), stage("next", 1, ("long",))])
    a, b = fleet.otto("a"), fleet.otto("b")
    request = pb.ExecutePipelineRequest(pipeline_yaml=path.read_text(), file_name="b.yaml",
                                        build_id="own-1")
    first = next(iter(a.ExecutePipeline(request)))
    assert first.sequence == 1
    pod = wait_stage_running(fleet, "own-1", "long")
    assert fleet.owner("own-1") == "a"
    # status and attach from B, from any sequence
    status = b.GetPipelineStatus(pb.PipelineStatusRequest(build_id="own-1"))
    assert status.state == pb.PIPELINE_STATE_RUNNING and status.last_sequence >= 2
    attached = b.ExecutePipeline(pb.ExecutePipelineRequest(build_id="own-1", after_sequence=1))
    second = next(iter(attached))
    assert second.sequence == 2
    attached.cancel()
    # the same file and id submitted to B attaches: no second run
    again = b.ExecutePipeline(request)
    assert next(iter(again)).sequence == 1
    again.cancel()
    time.sleep(1)
    assert len(build_pods_of(fleet, "own-1")) == 1 and fleet.owner("own-1") == "a"
    # logs from B, live
    got: list[str] = []
    logs = fleet.logs("b").StreamBuildLogs(pb.BuildLogsRequest(build_id="own-1", follow=True))

    def read() -> None:
        try:
            for entry in logs:
                got.append(entry.message)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cluster.pod_log(pod.metadata.name, [f"line {i}" for i in range(5)], container="worker")
    wait_until(lambda: len(got) >= 5, "5 log lines from replica B", timeout=20)
    assert got[:5] == [f"line {i}" for i in range(5)]
    # cancel from B reaches A through Redis
    cancelled = b.CancelPipeline(pb.CancelPipelineRequest(build_id="own-1"), timeout=60)
    assert cancelled.state == pb.PIPELINE_STATE_CANCELLED
    wait_until(lambda: not build_pods_of(fleet, "own-1"), "the build's pods deleted",
               timeout=30)
    reader.join(10)
    assert not reader.is_alive(), "the log stream ends with the build"
    results = fleet.workers.wait_results(1)
    time.sleep(1)
    assert [r["build_id"] for r in fleet.workers.results()] == ["own-1"], results


def test_a_stage_that_ended_while_nobody_watched_finishes_within_seconds(
        fleet: Fleet, tmp_path: Path) -> None:
    fleet.start("a")
    path = pipeline_file(tmp_path / "gap.yaml", [stage("s1", 3), stage("s2", 1, ("s1",))])
    client = fleet.run(path, "gap-1", "a")
    wait_stage_running(fleet, "gap-1", "s1")
    fleet.server("a").process.send_signal(signal.SIGKILL)
    client.kill()
    client.communicate()
    # s1's pod ends while no replica runs
    wait_until(lambda: all(p.status.phase == "Succeeded" for p in build_pods_of(fleet, "gap-1")),
               "s1's pod ended, unwatched", timeout=20)
    time.sleep(LEASE)        # the lease is gone too
    fleet.start("b")
    started = time.monotonic()
    otto = fleet.otto("b")
    wait_until(lambda: otto.GetPipelineStatus(pb.PipelineStatusRequest(build_id="gap-1")).state
               != pb.PIPELINE_STATE_RUNNING, "the build over", timeout=30)
    took = time.monotonic() - started
    status = otto.GetPipelineStatus(pb.PipelineStatusRequest(build_id="gap-1"))
    assert status.state == pb.PIPELINE_STATE_SUCCEEDED, status
    assert {s.name: s.attempt for s in status.stages} == {"s1": 1, "s2": 1}
    print(f"finished {took:.1f}s after a replica came back")
    assert took < 15


def test_a_stage_whose_pod_vanished_while_nobody_watched_fails_with_a_named_reason(
        fleet: Fleet, cluster: Cluster, tmp_path: Path) -> None:
    from kubernetes import client as k8s

    fleet.start("a")
    path = pipeline_file(tmp_path / "gone.yaml", [stage("s1", 30), stage("s2", 1, ("s1",))])
    client = fleet.run(path, "gone-1", "a")
    pod = wait_stage_running(fleet, "gone-1", "s1")
    fleet.server("a").process.send_signal(signal.SIGKILL)
    client.kill()
    client.communicate()
    k8s.CoreV1Api(cluster.api).delete_namespaced_pod(pod.metadata.name, cluster.namespace,
                                                     grace_period_seconds=0)
    wait_until(lambda: not build_pods_of(fleet, "gone-1"), "the pod gone", timeout=20)
    time.sleep(LEASE)
    fleet.start("b")
    otto = fleet.otto("b")
    wait_until(lambda: otto.GetPipelineStatus(pb.PipelineStatusRequest(build_id="gone-1")).state
               != pb.PIPELINE_STATE_RUNNING, "the build over", timeout=30)
    status = otto.GetPipelineStatus(pb.PipelineStatusRequest(build_id="gone-1"))
    assert status.state == pb.PIPELINE_STATE_FAILED
    s1 = next(s for s in status.stages if s.name == "s1")
    assert s1.state == pb.STAGE_STATE_FAILED and "lost" in s1.message, s1
    assert "vanished while no server watched it" in fleet.server("b").output()
    assert not build_pods_of(fleet, "gone-1"), "never created a second time"


def test_pipeline_run_build_id_shows_every_log_line_20_of_20(
        fleet: Fleet, cluster: Cluster, tmp_path: Path) -> None:
    fleet.start("a")
    path = pipeline_file(tmp_path / "logs.yaml", [stage("say", 4)])
    shown = 0
    for i in range(20):
        build_id = f"logs-{i}"
        client = fleet.run(path, build_id, "a")
        pod = wait_stage_running(fleet, build_id, "say", timeout=30)
        cluster.pod_log(pod.metadata.name, [f"{build_id} line {n}" for n in range(3)],
                        container="worker")
        code, lines, err = finished(client)
        assert code == 0, err
        logs = [x["message"] for x in lines if x["type"] == "log"]
        if logs == [f"{build_id} line {n}" for n in range(3)]:
            shown += 1
        else:
            print(f"run {i}: {logs} {err}")
    assert shown == 20


def test_a_finished_builds_logs_are_served_by_a_replica_that_never_ran_it(
        fleet: Fleet, cluster: Cluster, tmp_path: Path) -> None:
    fleet.start("a")
    path = pipeline_file(tmp_path / "old.yaml", [stage("say", 3, workers=2)])
    client = fleet.run(path, "old-1", "a")
    wait_until(lambda: len([p for p in build_pods_of(fleet, "old-1")
                            if p.status.phase == "Running"]) == 2, "2 pods running", timeout=30)
    for p in build_pods_of(fleet, "old-1"):
        cluster.pod_log(p.metadata.name, [f"{p.metadata.name} {n}" for n in range(4)],
                        container="worker")
    code, _, err = finished(client)
    assert code == 0, err
    wait_until(lambda: not build_pods_of(fleet, "old-1"), "its pods deleted", timeout=30)
    assert fleet.server("a").stop(signal.SIGTERM) == 0
    fleet.start("b")                          # never ran it, never saw its pods
    entries = list(fleet.logs("b").StreamBuildLogs(pb.BuildLogsRequest(build_id="old-1")))
    assert len(entries) == 8
    assert [e.sequence for e in entries] == list(range(1, 9))
    for name in {e.worker for e in entries}:
        assert [e.message for e in entries if e.worker == name] == [f"{name} {n}"
                                                                  for n in range(4)]
    # and the stage's task logs too, from the build's log in Redis
    task = list(fleet.logs("b").StreamWorkerLogs(pb.WorkerLogsRequest(task_id="old-1/say")))
    assert sorted(e.message for e in task) == sorted(e.message for e in entries)


def test_through_sentinel_a_build_outlives_a_redis_restart_with_aof(
        workers: Workers, tmp_path: Path) -> None:
    import redis as redis_py

    from testbed.redis import Redis, Sentinel

    store = Redis(tmp_path / "aof", appendonly=True).start()
    sentinel = Sentinel(tmp_path / "sentinel", store).start()
    try:
        tls = tls_files(tmp_path)
        workers.configure(run_seconds=2, redis={"url": sentinel.url},
                          api={"enabled": True, "tls": tls},
                          pipelines={"lease_seconds": LEASE, "adopt_seconds": 0.5})
        fleet = Fleet(workers, tmp_path / "ca.pem")
        fleet.start("a")
        path = three_stages(tmp_path, "aof")
        seen: set[str] = set()
        stop = threading.Event()
        watcher = threading.Thread(target=stage_pods_seen, args=(fleet, "aof-1", seen, stop),
                                   daemon=True)
        watcher.start()
        client = fleet.run(path, "aof-1", "a")
        wait_stage_running(fleet, "aof-1", "s2")
        store.stop()                  # a graceful restart: the AOF has every write
        time.sleep(1)
        store.start()
        code, lines, err = finished(client)
        stop.set()
        watcher.join()
        assert code == 0, err
        assert_each_stage_ran_once(lines, seen)
        with redis_py.Redis(port=store.port, decode_responses=True) as r:
            results = [f for _, f in r.xrange(f"{workers.tag}:results")]
        assert [x["build_id"] for x in results] == ["aof-1"]
    finally:
        workers.stop_all()
        sentinel.stop()
        store.stop()


def test_through_sentinel_a_build_outlives_its_masters_sigkill_and_a_failover(
        workers: Workers, tmp_path: Path) -> None:
    """A master with AOF, its replica, a Sentinel (quorum 1): the master is SIGKILLed while
    stage 2 runs and a scale request's pod runs, Sentinel promotes the replica; the build
    completes on it, every stage once, the client's sequence contiguous; the request in flight
    and one submitted after the failover are each handled once; one result each."""
    import redis as redis_py

    from testbed.redis import Redis, Sentinel

    master = Redis(tmp_path / "master", appendonly=True).start()
    replica = Redis(tmp_path / "replica", appendonly=True, replica_of=master).start()
    sentinel = Sentinel(tmp_path / "sentinel", master, down_after_ms=1000,
                        failover_timeout_ms=3000).start()
    try:
        wait_until(lambda: sentinel.replicas_known() == 1, "Sentinel knows the replica")
        tls = tls_files(tmp_path)
        workers.configure(run_seconds=2, redis={"url": sentinel.url},
                          api={"enabled": True, "tls": tls},
                          pipelines={"lease_seconds": LEASE, "adopt_seconds": 0.5})
        fleet = Fleet(workers, tmp_path / "ca.pem")
        fleet.start("a")
        fleet.start("b")
        path = three_stages(tmp_path, "failover")
        seen: set[str] = set()
        stop = threading.Event()
        watcher = threading.Thread(target=stage_pods_seen,
                                   args=(fleet, "failover-1", seen, stop), daemon=True)
        watcher.start()
        client = fleet.run(path, "failover-1", "a", "b")
        wait_stage_running(fleet, "failover-1", "s2")
        with redis_py.Redis(port=master.port, decode_responses=True) as r:
            r.xadd(workers.stream, {"type": "scale_up", "pod_count": "1",
                                    "task_id": "before-failover"})
        workers.wait_pods(1, "before-failover", phase="Running")
        master.kill()                  # no shutdown: what it had not sent its replica is gone
        killed = time.monotonic()
        wait_until(lambda: sentinel.master_port() == replica.port, "Sentinel promotes the replica",
                   timeout=30)
        promoted = time.monotonic() - killed
        assert replica.role() == "master"
        with redis_py.Redis(port=replica.port, decode_responses=True) as r:
            r.xadd(workers.stream, {"type": "scale_up", "pod_count": "1",
                                    "task_id": "after-failover"})
        code, lines, err = finished(client)
        stop.set()
        watcher.join()
        assert code == 0, err
        assert_each_stage_ran_once(lines, seen)

        def results() -> list[dict[str, str]]:
            with redis_py.Redis(port=replica.port, decode_responses=True) as r:
                return [f for _, f in r.xrange(f"{workers.tag}:results")]

        wait_until(lambda: len(results()) >= 3, "3 results", timeout=60)
        time.sleep(1)                  # and no second entry comes late
        assert sorted(x.get("build_id") or x["task_id"] for x in results()) == [
            "after-failover", "before-failover", "failover-1"], "each reported once"
        assert all(x["outcome"] == "succeeded" for x in results() if "build_id" not in x)
        print(f"replica promoted {promoted:.1f}s after the master's SIGKILL")
    finally:
        workers.stop_all()
        sentinel.stop()
        replica.stop()
        master.stop()
