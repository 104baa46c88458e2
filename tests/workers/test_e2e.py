"""The issue's "done when", end to end: `devscale workers serve` as a process with its gRPC API
over real TLS on loopback (certificates by trustme, a bearer token), real Redis and the
whole-cluster test bed (API server, controller-manager, scheduler, KWOK pods). Clients are
`devscale pipeline run` as a process and grpcio's own stubs.

Pins: a pipeline with parallel branches, a stage that fails once then passes on retry and one
that fails for good (the right stages run, in parallel where they may, dependants skipped, the
progress stream says it all in order, exit 8); KWOK pods' log lines reach a gRPC client live,
in order and tagged; a client that disconnects mid-stream leaves no reader or follow behind;
100 concurrent log streams; a resumed progress stream misses nothing; SIGTERM turns health
NOT_SERVING before the server stops (and hands the running build over: its stream ends
UNAVAILABLE saying where to resume, its pod runs on);
with --no-intake only the API starts work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
import yaml

from devtrip_scale.workers import BUILD_LABEL
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from testbed import kwok
from testbed.net import free_port, wait_until
from tests.conftest import ROOT, Cluster
from tests.workers.conftest import Server, Workers

pytestmark = pytest.mark.integration

TOKEN = "e2e-" + os.urandom(12).hex()
RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"},
             "limits": {"cpu": "100m", "memory": "64Mi"}}


@dataclass
class Api:
    """A `devscale workers serve` process with its gRPC API, and how to reach it."""

    workers: Workers
    server: Server
    address: str
    ca: Path

    def channel(self, token: str | None = TOKEN) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(self.ca.read_bytes())
        if token is not None:
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(token))
        return grpc.secure_channel(self.address, creds)

    def ottoscaler(self) -> pb_grpc.OttoscalerServiceStub:
        return pb_grpc.OttoscalerServiceStub(self.channel())

    def logs(self) -> pb_grpc.LogStreamingServiceStub:
        return pb_grpc.LogStreamingServiceStub(self.channel())

    def gauge(self, name: str) -> float:
        for line in self.server.metrics().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} is not in /metrics")

    def run_pipeline(self, path: Path, *args: str,
                     timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devtrip_scale", "pipeline", "run", str(path), "--server",
             self.address, "--ca", str(self.ca), *args], capture_output=True, text=True,
            timeout=timeout, cwd=ROOT, env={**os.environ, "DEVSCALE_API_TOKEN": TOKEN})


def tls_files(where: Path) -> dict[str, str]:
    """The API's certificate and key (and ca.pem, for clients) made by trustme in `where`: the
    config's `api.tls`."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_pem.write_to_path(str(where / "api.key"))
    leaf.cert_chain_pems[0].write_to_path(str(where / "api.pem"))
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    return {"cert_file": str(where / "api.pem"), "key_file": str(where / "api.key")}


@pytest.fixture
def api(workers: Workers, tmp_path: Path) -> Iterator[Api]:
    tls = tls_files(tmp_path)
    port = free_port()
    workers.configure(run_seconds=2, api={
        "enabled": True, "listen": f"127.0.0.1:{port}",
        "tls": tls})
    server = workers.start(env={"DEVSCALE_API_TOKEN": TOKEN})
    yield Api(workers, server, f"localhost:{port}", tmp_path / "ca.pem")


def pipeline_file(path: Path, stages: list[dict[str, Any]], fail_fast: bool = False) -> Path:
    doc = {"name": "e2e", "fail_fast": fail_fast,
           "defaults": {"image": "registry.invalid/ci:1", "command": ["run-stage"],
                        "resources": RESOURCES},
           "stages": stages}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stage(name: str, run: float, needs: tuple[str, ...] = (), exit_code: int | None = None,
          fail_attempts: int | None = None, **more: Any) -> dict[str, Any]:
    """A stage whose KWOK pods run `run` seconds and end with `exit_code` (or fail their first
    `fail_attempts` attempts)."""
    notes = {kwok.RUN_SECONDS: f"{run:g}"}
    if exit_code is not None:
        notes[kwok.EXIT_CODE] = str(exit_code)
    if fail_attempts is not None:
        notes[kwok.FAIL_ATTEMPTS] = str(fail_attempts)
    return {"name": name, **({"needs": list(needs)} if needs else {}), "annotations": notes,
            **more}


def build_pods(api: Api, build: str) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(api.workers.cluster.api).list_namespaced_pod(
        api.workers.cluster.namespace, label_selector=f"{BUILD_LABEL}={build}").items)


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_pipeline_with_parallel_branches_a_retry_and_a_failure_over_grpc(
        api: Api, tmp_path: Path) -> None:
    path = pipeline_file(tmp_path / "ci.yaml", [
        stage("checkout", 1),
        stage("build", 1, ("checkout",), workers=2),
        stage("unit", 2, ("build",), fail_attempts=1, exit_code=1,
              retry={"limit": 2, "backoff_seconds": 1}),
        stage("lint", 4, ("build",)),
        stage("e2e", 1, ("build",), exit_code=3, retry={"limit": 1, "backoff_seconds": 1}),
        stage("package", 1, ("unit", "lint")),
        stage("deploy", 1, ("package", "e2e")),
    ])
    run = api.run_pipeline(path, "-o", "json", "--build-id", "e2e-1")
    assert run.returncode == 8, run.stderr          # the pipeline failed: exit 8
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    progress = [x for x in lines if x["type"] == "progress"]
    [result] = [x for x in lines if x["type"] == "result"]
    assert [p["sequence"] for p in progress] == list(range(1, len(progress) + 1))
    assert result == {**result, "buildId": "e2e-1", "state": "failed", "exitCode": 8,
                      "failedStages": ["e2e"], "skippedStages": ["deploy"]}
    final = {s["name"]: s for s in progress[-1]["stages"]}
    assert {n: s["state"] for n, s in final.items()} == {
        "checkout": "succeeded", "build": "succeeded", "unit": "succeeded",
        "lint": "succeeded", "e2e": "failed", "package": "succeeded", "deploy": "skipped"}
    # attempts are counted from 0, as the pods' names end (-0-0, then -0-1)
    assert final["unit"]["attempt"] == 1 and final["e2e"]["attempt"] == 1
    assert "e2e" in final["deploy"]["message"]

    def at(name: str, state: str) -> float:
        return min(seconds(p["time"]) for p in progress
                   if p["stage"] == name and p["stageState"] == state)

    # in order: a stage runs only after what it needs succeeded; the three branches overlap
    assert at("checkout", "succeeded") <= at("build", "running")
    for branch in ("unit", "lint", "e2e"):
        assert at("build", "succeeded") <= at(branch, "running")
    assert at("lint", "running") < at("unit", "succeeded")
    assert at("unit", "running") < at("lint", "succeeded")
    assert max(at("unit", "succeeded"), at("lint", "succeeded")) <= at("package", "running")
    # the retry is a fresh pod, after the failed attempt, and said as such
    retrying = [p for p in progress if p["stage"] == "unit" and p["stageState"] == "retrying"]
    assert retrying and "exit 1" in retrying[0]["message"]
    unit_pods = {p["pod"] for p in progress if p["stage"] == "unit" and p["pod"]}
    assert any(pod.endswith("-0-0") for pod in unit_pods)
    assert any(pod.endswith("-0-1") for pod in unit_pods)
    # and every stage pod is gone once the build has ended
    wait_until(lambda: not build_pods(api, "e2e-1"), "the build's pods deleted", timeout=30)


def test_logs_of_kwok_pods_reach_a_grpc_client_live_in_order_and_tagged(
        api: Api, cluster: Cluster, tmp_path: Path) -> None:
    path = pipeline_file(tmp_path / "logs.yaml", [stage("compile", 25, workers=2)])
    runner = threading.Thread(target=api.run_pipeline, args=(path, "--build-id", "logs-1",
                                                             "-o", "json"), daemon=True)
    runner.start()
    pods = api.workers.wait_pods(2, timeout=30, phase="Running")
    names = sorted(p.metadata.name for p in pods)
    got: list[tuple[float, pb.LogEntry]] = []
    call = api.logs().StreamBuildLogs(pb.BuildLogsRequest(build_id="logs-1", follow=True))

    def read() -> None:
        try:
            for entry in call:
                got.append((time.monotonic(), entry))
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    written: dict[str, float] = {}
    for i in range(5):                     # each pod writes a line a turn, live
        for name in names:
            text = f"{name} step {i}"
            cluster.pod_log(name, [text], container="worker")
            written[text] = time.monotonic()
        time.sleep(0.5)
    wait_until(lambda: len(got) >= 10, "10 log lines over gRPC", timeout=20)
    call.cancel()
    lines = [e for _, e in got]
    assert [e.sequence for e in lines] == list(range(1, len(lines) + 1))
    stamps = [e.time.seconds + e.time.nanos / 1e9 for e in lines]
    assert stamps == sorted(stamps), "ordered by the kubelet's timestamps across both pods"
    for e in lines:
        assert e.build_id == "logs-1" and e.stage == "compile" and e.worker in names
        assert e.message.startswith(e.worker) and e.container == "worker" and e.stream
    latency = sorted(arrived - written[e.message] for arrived, e in got)
    print(f"log latency, file to gRPC client: p50 {latency[len(latency) // 2] * 1000:.0f} ms, "
          f"max {latency[-1] * 1000:.0f} ms")
    assert latency[-1] < 5, "lines arrive live, not when the pod ends"
    api.ottoscaler().CancelPipeline(pb.CancelPipelineRequest(build_id="logs-1"))


def test_a_client_that_disconnects_mid_stream_leaves_nothing_behind_and_100_streams_work(
        api: Api, cluster: Cluster, tmp_path: Path) -> None:
    path = pipeline_file(tmp_path / "many.yaml", [stage("soak", 30)])
    otto = api.ottoscaler()
    first = next(iter(otto.ExecutePipeline(pb.ExecutePipelineRequest(
        pipeline_yaml=path.read_text(), file_name="many.yaml", build_id="many-1"))))
    assert first.sequence == 1
    [pod] = api.workers.wait_pods(1, timeout=30, phase="Running")
    name = pod.metadata.name
    cluster.pod_log(name, ["line 0"], container="worker")
    follows = api.gauge("devscale_workers_log_follows")
    channels = [api.channel() for _ in range(10)]
    calls = [pb_grpc.LogStreamingServiceStub(channels[i % 10]).StreamWorkerLogs(
        pb.WorkerLogsRequest(task_id=pod.metadata.labels["devscale.devtrip.io/task"],
                             follow=True)) for i in range(100)]
    seen: list[list[str]] = [[] for _ in calls]

    def read(i: int) -> None:
        try:
            for entry in calls[i]:
                seen[i].append(entry.message)
        except grpc.RpcError:
            pass

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(100)]
    for t in readers:
        t.start()
    wait_until(lambda: api.gauge("devscale_workers_log_readers") >= 100, "100 readers",
               timeout=30)
    cluster.pod_log(name, [f"line {i}" for i in range(1, 4)], container="worker")
    wanted = [f"line {i}" for i in range(4)]
    wait_until(lambda: all(s[:4] == wanted for s in seen), "every stream has every line",
               timeout=30)
    assert api.gauge("devscale_workers_log_follows") == follows, "one follow for 100 readers"
    for call in calls:                      # all of them hang up mid-stream
        call.cancel()
    wait_until(lambda: api.gauge("devscale_workers_log_readers") == 0, "no reader left",
               timeout=20)
    assert api.gauge("devscale_workers_log_follows") == follows   # the build's own follow
    for channel in channels:
        channel.close()
    otto.CancelPipeline(pb.CancelPipelineRequest(build_id="many-1"))


def test_a_resumed_progress_stream_misses_nothing(api: Api, tmp_path: Path) -> None:
    path = pipeline_file(tmp_path / "resume.yaml", [
        stage("a", 1), stage("b", 1, ("a",)), stage("c", 1, ("a",)), stage("d", 1, ("b", "c"))])
    otto = api.ottoscaler()
    call = otto.ExecutePipeline(pb.ExecutePipelineRequest(
        pipeline_yaml=path.read_text(), file_name="resume.yaml", build_id="resume-1"))
    head = []
    for message in call:                  # read a few, then drop the stream mid-build
        head.append(message)
        if len(head) == 3:
            call.cancel()
            break
    rest = list(otto.ExecutePipeline(pb.ExecutePipelineRequest(
        build_id="resume-1", after_sequence=head[-1].sequence)))
    whole = list(otto.ExecutePipeline(pb.ExecutePipelineRequest(build_id="resume-1")))
    resumed = [m.sequence for m in head + rest]
    assert resumed == [m.sequence for m in whole] == list(range(1, len(whole) + 1))
    assert [m.SerializeToString() for m in head + rest] == \
        [m.SerializeToString() for m in whole]
    assert whole[-1].pipeline_state == pb.PIPELINE_STATE_SUCCEEDED
    assert not any(m.missed for m in whole)


def test_sigterm_says_not_serving_and_hands_the_build_over(api: Api, tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    SERVING, NOT_SERVING = (health_pb2.HealthCheckResponse.SERVING,
                            health_pb2.HealthCheckResponse.NOT_SERVING)
    path = pipeline_file(tmp_path / "long.yaml", [stage("long", 120)])
    otto = api.ottoscaler()
    next(iter(otto.ExecutePipeline(pb.ExecutePipelineRequest(
        pipeline_yaml=path.read_text(), file_name="long.yaml", build_id="long-1"))))
    api.workers.wait_pods(1, timeout=30, phase="Running")
    health = health_pb2_grpc.HealthStub(api.channel(token=None))   # health needs no token
    statuses: list[tuple[float, int]] = []
    watch = health.Watch(health_pb2.HealthCheckRequest(service="devscale.v1.OttoscalerService"))

    def read() -> None:
        try:
            for answer in watch:
                statuses.append((time.monotonic(), answer.status))
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: bool(statuses) and statuses[-1][1] == SERVING, "SERVING", timeout=10)
    progress = otto.ExecutePipeline(pb.ExecutePipelineRequest(build_id="long-1",
                                                              after_sequence=1))
    signalled = time.monotonic()
    api.server.process.send_signal(signal.SIGTERM)
    assert api.server.process.wait(60) == 0
    stopped = time.monotonic()
    # (health follows readiness, so a busy machine may have flapped it before the signal)
    assert any(signalled <= t < stopped for t, s in statuses if s == NOT_SERVING), statuses
    # the build is handed over, not cancelled: its stream ends UNAVAILABLE, saying where to
    # resume, and its pod runs on for the replica that adopts it
    with pytest.raises(grpc.RpcError) as broke:
        list(progress)
    assert broke.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "resume after sequence" in (broke.value.details() or "")
    assert "handing 1 running build(s) over" in api.server.output()
    api.workers.wait_pods(1, timeout=5, phase="Running")
    assert "gRPC API stopped" in api.server.output()


def test_with_no_intake_only_the_api_starts_work(workers: Workers, tmp_path: Path) -> None:
    tls = tls_files(tmp_path)
    port = free_port()
    workers.configure(run_seconds=30, api={
        "tls": tls})
    server = workers.start(env={"DEVSCALE_API_TOKEN": TOKEN},
                           args=["--no-intake", "--api-listen", f"127.0.0.1:{port}"])
    api = Api(workers, server, f"localhost:{port}", tmp_path / "ca.pem")
    workers.submit(type="scale_up", pod_count=1, task_id="from-stream")
    answer = api.ottoscaler().ScaleUp(pb.ScaleUpRequest(task_id="from-api", pod_count=2))
    assert answer.created == 2
    time.sleep(3)                       # the stream entry had its chance to be read
    assert {p.metadata.name for p in workers.pods()} == set(answer.pods)
    assert workers.client().xlen(workers.stream) == 1
    assert "the stream intake is off" in server.output()
