"""Ottoscaler's CI server against devscale, over real gRPC on the real test bed: a client
generated at test time from proto/ottoscaler/v1 (grpc_tools.protoc into tmp_path), run as a
separate process, does ScaleUp (3 workers, build_config as env, a repeat ALREADY_PROCESSED) →
GetWorkerStatus (counts right, each filter works) → ScaleDown to 1 (the two pending pods go,
the running one stays) → ScaleDown to 0; ExecutePipeline with four inline stages (a diamond, one
stage retried once) streams PipelineProgress with the right StageStatus sequence, the stages in
DAG order and progress_percentage reaching 100, and a repeat of its pipeline_id attaches; a bad
stage is INVALID_ARGUMENT naming the stage id and the field, and runs nothing; the plaintext
listener serves ottoscaler.v1 only, behind the token, and warns at start; a `devscale workers
serve` told to listen plaintext on 0.0.0.0 refuses to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtrip_scale.workers.tasks import pod_name
from testbed import kwok
from testbed.net import free_port, wait_until
from tests.conftest import ROOT, Cluster
from tests.workers.api.conftest import TOKEN, ApiBed, StartApi
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration
CLIENT = Path(__file__).parent / "otto_client.py"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ottoscaler.v1 client code, generated now from devscale's proto (not the package's)."""
    out = tmp_path_factory.mktemp("otto-client")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                    f"-I{ROOT / 'proto' / 'ottoscaler' / 'v1'}", f"--python_out={out}",
                    f"--grpc_python_out={out}", "ottoscaler.proto"],
                   check=True, capture_output=True, text=True, timeout=120)
    return out


class Client:
    """Runs otto_client.py: one process per call."""

    def __init__(self, generated: Path, address: str, ca: str, token: str | None) -> None:
        self.generated, self.address, self.ca, self.token = generated, address, ca, token

    def _args(self, method: str, request: dict[str, Any]) -> list[str]:
        return [sys.executable, str(CLIENT), str(self.generated), self.address, self.ca,
                method, json.dumps(request)]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "OTTO_TOKEN"}
        if self.token:
            env["OTTO_TOKEN"] = self.token
        return env

    def call(self, method: str, **request: Any) -> dict[str, Any]:
        done = subprocess.run(self._args(method, request), capture_output=True, text=True,
                              timeout=120, env=self._env())
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def stream(self, method: str, **request: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self._args(method, request), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self._env())


def _client(bed: ApiBed, generated: Path, token: str | None = TOKEN) -> Client:
    return Client(generated, bed.address, str(bed.pki.dir / "ca.pem"), token)


@pytest.fixture
def two_nodes_cordoned(cluster: Cluster) -> Iterator[None]:
    """Only kwok-node-0 takes new pods: with 3-CPU workers, one runs and the rest stay
    Pending (unschedulable), so that ScaleDown's order is visible."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    names = [n.name for n in kwok.NODES[1:]]
    for name in names:
        core.patch_node(name, {"spec": {"unschedulable": True}})
    try:
        yield
    finally:
        for name in names:
            core.patch_node(name, {"spec": {"unschedulable": False}})


def _phases(bed: ApiBed) -> dict[str, str]:
    return {p.metadata.name: p.status.phase for p in bed.pods()
            if p.metadata.deletion_timestamp is None}


def test_scale_up_status_and_scale_down_as_ottoscalers_client(
        api_bed: StartApi, generated: Path, two_nodes_cordoned: None) -> None:
    big = {"requests": {"cpu": "3", "memory": "16Mi"}, "limits": {"cpu": "3", "memory": "64Mi"}}
    bed = api_bed(run_seconds=300, worker={"resources": big})
    c = _client(bed, generated)
    up = c.call("ScaleUp", task_id="ci-42", worker_count=3, repository="https://git.invalid/x",
                commit_sha="0123abcd", triggered_by="alice", reason="push",
                build_config={"GOFLAGS": "-v"}, metadata={"team": "core"})
    assert (up["status"], up["processed_count"]) == ("SUCCESS", 3), up
    names = sorted(up["worker_pod_names"])
    assert names == sorted(pod_name("ci-42", i, 0) for i in range(3))
    assert up["started_at"].endswith("Z") and up["completed_at"] >= up["started_at"]
    pod = next(p for p in bed.pods() if p.metadata.name == names[0])
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert (env["GOFLAGS"], env["OTTO_REPOSITORY"], env["OTTO_COMMIT_SHA"],
            env["OTTO_TRIGGERED_BY"], env["OTTO_REASON"], env["QUEUE"]) == (
        "-v", "https://git.invalid/x", "0123abcd", "alice", "push", "builds")
    assert pod.metadata.annotations["ottoscaler.devscale.devtrip.io/repository"] == \
        "https://git.invalid/x"

    again = c.call("ScaleUp", task_id="ci-42", worker_count=3)
    assert (again["status"], again["processed_count"]) == ("ALREADY_PROCESSED", 0)
    assert sorted(again["worker_pod_names"]) == names

    wait_until(lambda: sorted(_phases(bed).values()) == ["Pending", "Pending", "Running"],
               "one worker running, two pending", timeout=60)
    running = next(n for n, ph in _phases(bed).items() if ph == "Running")
    pending = sorted(n for n, ph in _phases(bed).items() if ph == "Pending")
    every = c.call("GetWorkerStatus", task_id="ci-42")
    assert (every["total_count"], every["running_count"], every["pending_count"],
            every["succeeded_count"], every["failed_count"]) == (3, 1, 2, 0, 0)
    assert sorted(w["pod_name"] for w in every["workers"]) == names
    first = next(w for w in every["workers"] if w["pod_name"] == running)
    assert (first["status"], first["task_id"], first["node_name"]) == (
        "running", "ci-42", kwok.NODES[0].name)
    assert first["created_at"] and first["started_at"]
    only_pending = c.call("GetWorkerStatus", task_id="ci-42", status_filter="pending")
    assert sorted(w["pod_name"] for w in only_pending["workers"]) == pending
    assert only_pending["total_count"] == 2
    one = c.call("GetWorkerStatus", worker_pod_name=running)
    assert [w["pod_name"] for w in one["workers"]] == [running]
    assert c.call("GetWorkerStatus", task_id="no-such-task")["total_count"] == 0
    bad = c.call("GetWorkerStatus", status_filter="sleeping")
    assert bad["error"] == "INVALID_ARGUMENT" and "status_filter" in bad["details"]

    unknown = c.call("ScaleDown", task_id="no-such-task", worker_count=1)
    assert unknown["status"] == "FAILED" and "not known" in unknown["message"]
    down = c.call("ScaleDown", task_id="ci-42", worker_count=1)
    assert (down["status"], down["processed_count"]) == ("SUCCESS", 2), down
    assert sorted(down["worker_pod_names"]) == pending          # pending pods first
    wait_until(lambda: list(_phases(bed)) == [running], "the two pending pods gone",
               timeout=30)
    kept = c.call("GetWorkerStatus", task_id="ci-42")
    assert (kept["total_count"], kept["running_count"], kept["pending_count"]) == (1, 1, 0)

    zero = c.call("ScaleDown", task_id="ci-42", worker_count=0)
    assert (zero["status"], zero["worker_pod_names"]) == ("SUCCESS", [running]), zero
    wait_until(lambda: not bed.pods(), "every worker pod gone", timeout=30)
    assert c.call("ScaleDown", task_id="ci-42")["status"] == "ALREADY_PROCESSED"
    assert not any(TOKEN in line for line in bed.said)


def _stage(stage_id: str, *needs: str, **more: Any) -> dict[str, Any]:
    return {"stage_id": stage_id, "depends_on": list(needs), "worker_count": 1, **more}


def test_execute_pipeline_streams_ottoscaler_progress(api_bed: StartApi,
                                                      generated: Path) -> None:
    bed = api_bed(run_seconds=4)
    c = _client(bed, generated)
    retried = {"max_attempts": 1, "retry_delay_seconds": 1, "retryable_failures": ["lost"]}
    request = {"pipeline_id": "otto-diamond", "name": "diamond", "commit_sha": "abc",
               "stages": [_stage("a"), _stage("b", "a", retry_policy=retried,
                                                config={"SUITE": "unit"}),
                          _stage("c", "a"), _stage("d", "b", "c")]}
    proc = c.stream("ExecutePipeline", **request)
    # b's first worker vanishes while it runs (deleted): the stage retries it once
    first_b = pod_name("otto-diamond/b", 0, 0)
    wait_until(lambda: _phases(bed).get(first_b) == "Running", "b's first worker running",
               timeout=60)
    from kubernetes import client

    client.CoreV1Api(bed.cluster.api).delete_namespaced_pod(first_b, bed.cluster.namespace,
                                                            grace_period_seconds=0)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert "error" not in messages[-1], messages[-1]
    assert all(m["pipeline_id"] == "otto-diamond" for m in messages)
    assert (messages[0]["stage_id"], messages[0]["status"]) == ("", "STAGE_PENDING")
    last = messages[-1]
    assert (last["stage_id"], last["status"], last["progress_percentage"]) == (
        "", "STAGE_COMPLETED", 100)
    percentages = [m["progress_percentage"] for m in messages]
    assert percentages == sorted(percentages)

    def sequence(stage: str) -> list[str]:
        seen: list[str] = []
        for m in messages:
            if m["stage_id"] == stage and (not seen or seen[-1] != m["status"]):
                seen.append(m["status"])
        return seen

    assert sequence("a") == ["STAGE_RUNNING", "STAGE_COMPLETED"]
    assert sequence("b") == ["STAGE_RUNNING", "STAGE_RETRYING", "STAGE_RUNNING",
                             "STAGE_COMPLETED"]
    assert sequence("c") == ["STAGE_RUNNING", "STAGE_COMPLETED"]
    assert sequence("d") == ["STAGE_RUNNING", "STAGE_COMPLETED"]

    def at(stage: str, status: str) -> int:
        return next(i for i, m in enumerate(messages) if m["stage_id"] == stage and
                    m["status"] == status)

    assert at("a", "STAGE_COMPLETED") < min(at("b", "STAGE_RUNNING"), at("c", "STAGE_RUNNING"))
    assert max(at("b", "STAGE_COMPLETED"), at("c", "STAGE_COMPLETED")) < at("d",
                                                                            "STAGE_RUNNING")
    b_done = messages[at("b", "STAGE_COMPLETED")]
    assert b_done["worker_pod_names"] == [first_b, pod_name("otto-diamond/b", 0, 1)]
    assert b_done["metrics"]["total_workers"] == 1
    assert b_done["metrics"]["successful_workers"] == 1
    assert b_done["started_at"] and b_done["completed_at"] >= b_done["started_at"]
    assert messages[at("a", "STAGE_COMPLETED")]["progress_percentage"] == 25

    # the same pipeline_id attaches: the build's whole progress again, nothing new run
    replay = proc_messages(c, request)
    assert [(m["stage_id"], m["status"]) for m in replay] == [
        (m["stage_id"], m["status"]) for m in messages]
    assert bed.builds() == [request["pipeline_id"]]


def proc_messages(c: Client, request: dict[str, Any]) -> list[dict[str, Any]]:
    proc = c.stream("ExecutePipeline", **request)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(("stages", "says"), [
    pytest.param([_stage("build"), _stage("test", "biuld")],
                 "stage 'test': depends_on: 'biuld' is not a stage", id="unknown-need"),
    pytest.param([_stage("build", worker_count=1000)], "stage 'build': worker_count 1000",
                 id="too-many-workers"),
    pytest.param([_stage("build", retry_policy={"retryable_failures": ["cosmic-ray"]})],
                 "stage 'build': retry_policy.retryable_failures", id="retry-kind"),
])
def test_a_bad_pipeline_is_invalid_argument_and_runs_nothing(
        api_bed: StartApi, generated: Path, stages: list[dict[str, Any]], says: str) -> None:
    bed = api_bed()
    [answer] = proc_messages(_client(bed, generated), {"pipeline_id": "bad", "stages": stages})
    assert answer["error"] == "INVALID_ARGUMENT"
    assert says in answer["details"]
    assert bed.builds() == []
    assert bed.pods() == []


def test_the_plaintext_listener_serves_ottoscaler_only_behind_the_token(
        api_bed: StartApi, generated: Path) -> None:
    bed = api_bed(api={"plaintext_listen": "127.0.0.1:0"})
    assert bed.api is not None and bed.api.plain_port
    warning = [line for line in bed.said if "plaintext" in line]
    assert warning and warning[0].startswith("WARNING: plaintext gRPC listener on 127.0.0.1:")
    plain = Client(generated, f"127.0.0.1:{bed.api.plain_port}", "-", TOKEN)
    assert plain.call("GetWorkerStatus")["total_count"] == 0
    refused = Client(generated, plain.address, "-", None).call("GetWorkerStatus")
    assert refused["error"] == "UNAUTHENTICATED"
    wrong = Client(generated, plain.address, "-", "tok-wrong").call("ScaleUp", task_id="x",
                                                                     worker_count=1)
    assert wrong["error"] == "UNAUTHENTICATED" and "tok-wrong" not in wrong["details"]
    # devscale.v1 is not served there: only the compatibility service goes without TLS
    import grpc

    from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
    from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc

    with grpc.insecure_channel(plain.address) as channel:
        with pytest.raises(grpc.RpcError) as e:
            pb_grpc.OttoscalerServiceStub(channel).GetWorkerStatus(
                pb.WorkerStatusRequest(), metadata=[("authorization", f"Bearer {TOKEN}")],
                timeout=10)
        assert e.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert bed.pods() == []


def test_serve_refuses_plaintext_on_all_interfaces(workers: Workers, tmp_path: Path,
                                                   pki: Any) -> None:
    tls = {"cert_file": str(pki.dir / "server.pem"), "key_file": str(pki.dir / "server.key")}
    port = free_port()
    workers.configure(api={"enabled": True, "tls": tls,
                           "plaintext_listen": f"0.0.0.0:{port}"})
    server = workers.start(ready=False, env={"DEVSCALE_API_TOKEN": TOKEN},
                           args=["--api-listen", f"127.0.0.1:{free_port()}"])
    assert server.process.wait(30) == 2
    text = server.output()
    assert "plaintext_listen" in text and "0.0.0.0 is not a loopback address" in text
    assert "plaintext_allow_remote: true" in text
    assert yaml.safe_load(Path(str(workers.config)).read_text())["api"]["plaintext_listen"]
