"""Python values ↔ devscale.v1 messages (pure): ScaleUp/ScaleDown requests checked by the
stream's rules, worker status grouped by task with the cap numbers, stage and build states,
progress events and gaps, build status, log lines, and devscale errors → gRPC status codes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from devtrip_scale.core.errors import ConfigError, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    BUILD_LABEL,
    INDEX_LABEL,
    STAGE_LABEL,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
)
from devtrip_scale.workers.api import convert
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.executor import BuildStatus
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
)
from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp
from devtrip_scale.workers.tasks import Capacity

ID = "grpc-1700000000000-abcd1234"


@pytest.mark.parametrize(("msg", "expected"), [
    pytest.param(pb.ScaleUpRequest(task_id="build-42", pod_count=3),
                 ScaleUp(ID, "build-42", 3), id="plain"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=1, metadata={"z": "1", "a": "x"}),
                 ScaleUp(ID, "b", 1, (("a", "x"), ("z", "1"))), id="metadata-sorted"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=10), ScaleUp(ID, "b", 10),
                 id="at-the-limit"),
])
def test_scale_up_requests(msg: pb.ScaleUpRequest, expected: ScaleUp) -> None:
    assert convert.scale_up_request(msg, ID, max_pod_count=10) == expected


@pytest.mark.parametrize(("msg", "reason"), [
    pytest.param(pb.ScaleUpRequest(pod_count=1), "task_id is required", id="no-task"),
    pytest.param(pb.ScaleUpRequest(task_id="b"), "pod_count 0 is outside 1..10", id="zero"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=-2), "pod_count -2 is outside",
                 id="negative"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=11), "outside 1..10",
                 id="past-the-limit"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=1, metadata={"9x": "v"}),
                 "metadata key '9x' must start with a letter", id="bad-metadata-key"),
    pytest.param(pb.ScaleUpRequest(task_id="b", pod_count=1,
                                   metadata={f"k{i}": "v" for i in range(17)}),
                 "at most 16", id="too-much-metadata"),
    pytest.param(pb.ScaleUpRequest(task_id="x" * 254, pod_count=1), "1-253",
                 id="task-too-long"),
])
def test_scale_up_refusals_give_the_reason(msg: pb.ScaleUpRequest, reason: str) -> None:
    got = convert.scale_up_request(msg, ID, max_pod_count=10)
    assert isinstance(got, Rejected) and reason in got.reason


@pytest.mark.parametrize(("msg", "expected"), [
    pytest.param(pb.ScaleDownRequest(task_id="b"), ScaleDown(ID, "b"), id="cancel"),
    pytest.param(pb.ScaleDownRequest(), Rejected(ID, "task_id is required: the task to cancel"),
                 id="no-task"),
])
def test_scale_down_requests(msg: pb.ScaleDownRequest, expected: object) -> None:
    assert convert.scale_down_request(msg, ID) == expected


def _pod(name: str, task: str, index: int, attempt: int, phase: str | None = None,
         exit_code: int | None = None, **labels: str) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "worker", "state": {
            "terminated": {"exitCode": exit_code}}}]
    return {"metadata": {"name": name, "labels": {TASK_LABEL: task, INDEX_LABEL: str(index),
                                                  ATTEMPT_LABEL: str(attempt), **labels},
                         "annotations": {TASK_ID_ANNOTATION: task.upper()}},
            "spec": {"nodeName": "kwok-0"}, "status": status}


def test_worker_status_groups_by_task_with_the_cap_numbers() -> None:
    pods = [_pod("w-b-1-0", "b", 1, 0, "Running"), _pod("w-b-0-1", "b", 0, 1, "Failed", 3),
            _pod("w-a-0-0", "a", 0, 0, None, **{BUILD_LABEL: "bld-1",
                                                STAGE_LABEL: "test"})]
    cap = Capacity(5)
    cap.hold("w-b-1-0")
    cap.request("waiting", ["x", "y", "z", "u", "v"])
    got = convert.worker_status(pods, "", cap)
    assert (got.max_workers, got.live_workers, got.queued_workers) == (5, 1, 5)
    assert [t.task_id for t in got.tasks] == ["A", "B"]
    a, b = got.tasks
    assert [(w.pod, w.build_id, w.stage, w.phase, w.node) for w in a.workers] == [
        ("w-a-0-0", "bld-1", "test", "Pending", "kwok-0")]
    assert [(w.pod, w.index, w.attempt, w.has_exit_code, w.exit_code) for w in b.workers] == [
        ("w-b-0-1", 0, 1, True, 3), ("w-b-1-0", 1, 0, False, 0)]
    assert dict(b.phases) == {"Running": 1, "Failed": 1}


@pytest.mark.parametrize(("task_id", "tasks"), [
    pytest.param("B", ["B"], id="one-task"),
    pytest.param("nope", [], id="unknown-task"),
    pytest.param("", ["A", "B"], id="every-task"),
])
def test_worker_status_filters_by_task(task_id: str, tasks: list[str]) -> None:
    pods = [_pod("w-a-0-0", "a", 0, 0), _pod("w-b-0-0", "b", 0, 0)]
    got = convert.worker_status(pods, task_id, Capacity(3))
    assert [t.task_id for t in got.tasks] == tasks


@pytest.mark.parametrize("state", list(StageState), ids=str)
def test_every_stage_state_has_its_enum(state: StageState) -> None:
    assert pb.StageState.Name(convert.stage_state(state)) == f"STAGE_STATE_{state.name}"


@pytest.mark.parametrize("state", list(BuildState), ids=str)
def test_every_build_state_has_its_enum(state: BuildState) -> None:
    assert pb.PipelineState.Name(convert.pipeline_state(state)) == f"PIPELINE_STATE_{state.name}"


STAGES = (StageStatus("build", StageState.SUCCEEDED, (), 1, 2, 2, 100.0, 160.5),
          StageStatus("test", StageState.RETRYING, ("build",), 2, 1, 0, 161.0, None, "exit 1"))


def test_progress_event_keeps_every_field() -> None:
    event = ProgressEvent(1700000000.25, "bld-1", BuildState.RUNNING, "test",
                          StageState.RETRYING, 2, 0, "w-t-0-1", "exit 1, again in 2s", STAGES)
    got = convert.progress((7, event), "bld-1")
    assert (got.sequence, got.build_id, got.stage, got.attempt, got.worker_index, got.pod,
            got.message, got.missed) == (7, "bld-1", "test", 2, 0, "w-t-0-1",
                                         "exit 1, again in 2s", 0)
    assert got.pipeline_state == pb.PIPELINE_STATE_RUNNING
    assert got.stage_state == pb.STAGE_STATE_RETRYING
    assert got.time.seconds == 1700000000 and got.time.nanos == 250_000_000
    build, test = got.stages
    assert (build.name, build.state, build.workers, build.workers_succeeded) == (
        "build", pb.STAGE_STATE_SUCCEEDED, 2, 2)
    assert build.finished.seconds == 160 and build.finished.nanos == 500_000_000
    assert list(test.needs) == ["build"] and test.message == "exit 1"
    assert not test.HasField("finished") and test.HasField("started")


@pytest.mark.parametrize("event", [
    ProgressEvent(1700000000.25, "bld-1", BuildState.RUNNING, "test", StageState.RETRYING, 2,
                  0, "w-t-0-1", "exit 1, again in 2s", STAGES),
    ProgressEvent(1700000001.5, "bld-1", BuildState.FAILED, message="failed", stages=STAGES),
    ProgressEvent(1700000002.0, "bld-1", BuildState.RUNNING, "build", StageState.SUCCEEDED, 1),
], ids=["worker-retrying", "build-ended", "stage-succeeded"])
def test_what_a_client_reads_back_is_the_event_the_server_sent(event: ProgressEvent) -> None:
    wire = pb.PipelineProgress.FromString(convert.progress((3, event), "bld-1")
                                          .SerializeToString())
    assert convert.event_of(wire) == event


def test_what_a_client_reads_back_is_the_line_the_relay_tagged() -> None:
    line = LogLine(1700000001.5, "compiling", "w-b-0-0", "b", "bld-1", "build", 0, 1,
                   "worker", "combined")
    wire = pb.LogEntry.FromString(convert.log_entry((4, line)).SerializeToString())
    assert convert.line_of(wire) == line


def test_a_build_level_event_has_no_stage_state() -> None:
    event = ProgressEvent(1.0, "bld-1", BuildState.SUCCEEDED)
    got = convert.progress((9, event), "bld-1")
    assert got.stage == "" and got.stage_state == pb.STAGE_STATE_UNSPECIFIED
    assert got.pipeline_state == pb.PIPELINE_STATE_SUCCEEDED


def test_a_gap_says_how_many_and_resumes_after_it() -> None:
    got = convert.progress(Missed(4, 10), "bld-1")
    assert (got.missed, got.sequence, got.build_id) == (7, 10, "bld-1")


def test_pipeline_status() -> None:
    got = convert.pipeline_status(BuildStatus("bld-1", "ci", BuildState.FAILED, STAGES, 100.0,
                                              None, 42))
    assert (got.build_id, got.pipeline, got.state, got.last_sequence) == (
        "bld-1", "ci", pb.PIPELINE_STATE_FAILED, 42)
    assert [s.name for s in got.stages] == ["build", "test"]
    assert got.started.seconds == 100 and not got.HasField("finished")


def test_log_line_is_tagged() -> None:
    line = LogLine(1700000001.5, "compiling", "w-b-0-0", "b", "bld-1", "build", 0, 1,
                   "worker", "stdout")
    got = convert.log_entry((3, line))
    assert (got.sequence, got.message, got.worker, got.task_id, got.build_id, got.stage,
            got.index, got.attempt, got.container, got.stream) == (
        3, "compiling", "w-b-0-0", "b", "bld-1", "build", 0, 1, "worker", "stdout")
    assert got.time.seconds == 1700000001 and got.time.nanos == 500_000_000
    gap = convert.log_entry(Missed(1, 2), "bld-1")
    assert (gap.missed, gap.sequence, gap.build_id, gap.message) == (2, 2, "bld-1", "")


@pytest.mark.parametrize(("stages", "stage", "wanted"), [
    pytest.param([], "build", True, id="no-filter"),
    pytest.param(["build", "test"], "test", True, id="named"),
    pytest.param(["build"], "test", False, id="not-named"),
])
def test_stage_filter(stages: list[str], stage: str, wanted: bool) -> None:
    assert convert.wanted(LogLine(0, "x", "p", stage=stage), stages) is wanted


@pytest.mark.parametrize(("error", "code"), [
    pytest.param(KubeForbidden("forbidden: cannot create pods", status=403),
                 grpc.StatusCode.PERMISSION_DENIED, id="403"),
    pytest.param(KubeNotFound("gone", status=404), grpc.StatusCode.NOT_FOUND, id="404"),
    pytest.param(KubeError("API server unreachable"), grpc.StatusCode.UNAVAILABLE,
                 id="unreachable"),
    pytest.param(KubeError("HTTP 503", status=503), grpc.StatusCode.UNAVAILABLE, id="503"),
    pytest.param(KubeError("HTTP 422", status=422), grpc.StatusCode.FAILED_PRECONDITION,
                 id="422"),
    pytest.param(ConfigError("p.yaml:3: stages: cycle"), grpc.StatusCode.INVALID_ARGUMENT,
                 id="config"),
    pytest.param(RedisConnectionError("refused"), grpc.StatusCode.UNAVAILABLE, id="redis"),
    pytest.param(ValueError("bug"), grpc.StatusCode.INTERNAL, id="anything-else"),
])
def test_error_codes(error: BaseException, code: grpc.StatusCode) -> None:
    assert convert.status_code(error) is code
