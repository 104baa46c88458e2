"""ottoscaler.v1 ↔ devscale values (pure): ScaleRequest → a task Spec (build_config as env,
origin as annotations/labels/env, metadata, bad input named); ScaleDown's choice (pending pods
first, then the highest index); GetWorkerStatus filters and counts; PipelineRequest → Pipeline
(depends_on → needs, worker_count → workers, config → env, retry_policy → retry, resources from
the server's template) and every refusal naming the stage id and the proto field;
PipelineProgress from a build's journal (StageStatus, progress_percentage, pod names)."""

from __future__ import annotations

from typing import Any

import pytest

from devtrip_scale.workers.api import otto_convert as oc
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.pipeline import RetryOn
from devtrip_scale.workers.progress import BuildState, ProgressEvent, StageState, StageStatus

WORKER = WorkerModel.model_validate({
    "image": "registry.invalid/worker:1", "command": ["run-task"], "env": {"QUEUE": "builds"},
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                  "limits": {"cpu": "100m", "memory": "64Mi"}}})


def _pod(name: str, phase: str | None, index: int, task: str = "t1",
         deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"devscale.devtrip.io/task": task,
                                                     "devscale.devtrip.io/index": str(index)},
                            "annotations": {"devscale.devtrip.io/task-id": task},
                            "creationTimestamp": "2026-12-04T10:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T10:01:00Z"
    status: dict[str, Any] = {} if phase is None else {"phase": phase}
    if phase == "Failed":
        status["containerStatuses"] = [{"state": {"terminated": {
            "exitCode": 3, "finishedAt": "2026-12-04T10:02:00Z"}}}]
    return {"metadata": meta, "status": status, "spec": {"nodeName": "n1"}}


# ---------------------------------------------------------------- ScaleUp


def test_scale_up_spec_carries_build_config_origin_and_metadata() -> None:
    msg = otto.ScaleRequest(task_id="job-7", worker_count=3, repository="https://git/x.git",
                            commit_sha="abc123", triggered_by="alice", reason="push",
                            build_config={"GOFLAGS": "-v"}, metadata={"team": "core"})
    spec = oc.scale_up_spec(msg, "grpc-1", WORKER, 10)
    assert (spec.task_id, spec.pod_count, spec.metadata) == ("job-7", 3, (("team", "core"),))
    template = WorkerModel.model_validate_json(spec.template)
    assert template.env == {"QUEUE": "builds", "GOFLAGS": "-v",
                            "OTTO_REPOSITORY": "https://git/x.git", "OTTO_COMMIT_SHA": "abc123",
                            "OTTO_TRIGGERED_BY": "alice", "OTTO_REASON": "push"}
    assert template.annotations[f"{oc.OTTO_DOMAIN}/repository"] == "https://git/x.git"
    assert template.labels[f"{oc.OTTO_DOMAIN}/commit-sha"] == "abc123"
    assert template.resources == WORKER.resources


@pytest.mark.parametrize(("msg", "says"), [
    pytest.param(otto.ScaleRequest(worker_count=1), "task_id is required", id="no-task"),
    pytest.param(otto.ScaleRequest(task_id="t", worker_count=0), "worker_count 0", id="zero"),
    pytest.param(otto.ScaleRequest(task_id="t", worker_count=11), "worker_count 11",
                 id="over-limit"),
    pytest.param(otto.ScaleRequest(task_id="t", worker_count=1, build_config={"1X": "y"}),
                 "build_config: '1X'", id="bad-env-name"),
])
def test_scale_up_refusals_name_the_field(msg: otto.ScaleRequest, says: str) -> None:
    with pytest.raises(oc.BadRequest, match=says):
        oc.scale_up_spec(msg, "grpc-1", WORKER, 10)


# ---------------------------------------------------------------- ScaleDown


def test_surplus_takes_pending_pods_first_then_the_highest_index() -> None:
    pods = [_pod("p0", "Running", 0), _pod("p1", "Pending", 1), _pod("p2", "Running", 2),
            _pod("p3", None, 3), _pod("p4", "Succeeded", 4),
            _pod("p5", "Running", 5, deleting=True)]
    names = lambda keep: [p["metadata"]["name"] for p in oc.surplus(pods, keep)]  # noqa: E731
    assert names(4) == []
    assert names(2) == ["p3", "p1"]
    assert names(1) == ["p3", "p1", "p2"]
    assert names(0) == ["p3", "p1", "p2", "p0"]


# ---------------------------------------------------------------- GetWorkerStatus


def test_worker_status_filters_and_counts() -> None:
    pods = [_pod("a0", "Running", 0, "a"), _pod("a1", "Pending", 1, "a"),
            _pod("a2", "Failed", 2, "a"), _pod("b0", "Running", 0, "b"),
            _pod("b1", "Running", 1, "b", deleting=True)]
    every = oc.worker_status(pods, otto.WorkerStatusRequest())
    assert (every.total_count, every.running_count, every.pending_count, every.failed_count,
            every.succeeded_count) == (4, 2, 1, 1, 0)
    a = oc.worker_status(pods, otto.WorkerStatusRequest(task_id="a"))
    assert [w.pod_name for w in a.workers] == ["a0", "a1", "a2"]
    failed = oc.worker_status(pods, otto.WorkerStatusRequest(task_id="a", status_filter="failed"))
    [w] = failed.workers
    assert (w.pod_name, w.status, w.error_message, w.completed_at, w.node_name, w.task_id) == (
        "a2", "failed", "exit code 3", "2026-12-04T10:02:00Z", "n1", "a")
    one = oc.worker_status(pods, otto.WorkerStatusRequest(worker_pod_name="b0"))
    assert [w.pod_name for w in one.workers] == ["b0"] and one.running_count == 1
    with pytest.raises(oc.BadRequest, match="status_filter 'done'"):
        oc.worker_status(pods, otto.WorkerStatusRequest(status_filter="done"))


# ---------------------------------------------------------------- ExecutePipeline


def _stage(stage_id: str, *needs: str, **kw: Any) -> otto.PipelineStage:
    return otto.PipelineStage(stage_id=stage_id, depends_on=list(needs), **kw)


def test_pipeline_of_maps_every_field() -> None:
    msg = otto.PipelineRequest(pipeline_id="p-1", name="CI", commit_sha="abc", stages=[
        _stage("build", worker_count=2, config={"TARGET": "x"}, image="golang:1",
               command=["make"], args=["all"], timeout_seconds=60, type="build",
               retry_policy=otto.RetryPolicy(max_attempts=1, retry_delay_seconds=2,
                                             retryable_failures=["failed", "timeout"])),
        _stage("test", "build")])
    p = oc.pipeline_of(msg, WORKER, 10)
    build, test = p.stages
    assert (p.name, build.name, build.workers, build.image, build.command, build.args) == (
        "CI", "build", 2, "golang:1", ("make",), ("all",))
    assert build.env["TARGET"] == "x" and build.env["OTTO_STAGE_TYPE"] == "build"
    assert build.env["OTTO_COMMIT_SHA"] == "abc" and build.env["QUEUE"] == "builds"
    assert (build.timeout_seconds, build.retry.limit, build.retry.backoff_seconds,
            build.retry.backoff_factor) == (60, 1, 2, 1)
    assert set(build.retry.on) == {RetryOn.FAILED, RetryOn.TIMEOUT}
    assert build.resources == WORKER.resources
    assert (test.needs, test.workers, test.image, test.command, test.timeout_seconds,
            test.retry.limit) == (("build",), 1, WORKER.image, ("run-task",), None, 0)


@pytest.mark.parametrize(("stages", "says"), [
    pytest.param([], "stages: a pipeline needs at least one stage", id="none"),
    pytest.param([_stage("")], r"stages\[0\]: stage_id is required", id="no-id"),
    pytest.param([_stage("Build_1")], "stage 'Build_1': stage_id: lower-case", id="bad-id"),
    pytest.param([_stage("a"), _stage("a")], "stage 'a': stage_id: duplicate", id="dup"),
    pytest.param([_stage("a", "zz")], "stage 'a': depends_on: 'zz' is not a stage",
                 id="unknown-need"),
    pytest.param([_stage("a", "a")], "stage 'a': depends_on: the stage depends on itself",
                 id="self"),
    pytest.param([_stage("a", "b"), _stage("b", "a")], "depends_on: .*cycle", id="cycle"),
    pytest.param([_stage("a", worker_count=11)], "stage 'a': worker_count 11", id="workers"),
    pytest.param([_stage("a", config={"A-B": "1"})], "stage 'a': config: 'A-B'",
                 id="config-key"),
    pytest.param([_stage("a", timeout_seconds=-1)], "stage 'a': timeout_seconds -1",
                 id="timeout"),
    pytest.param([_stage("a", retry_policy=otto.RetryPolicy(max_attempts=99))],
                 "stage 'a': retry_policy.max_attempts 99", id="attempts"),
    pytest.param([_stage("a", retry_policy=otto.RetryPolicy(retryable_failures=["cosmic"]))],
                 "stage 'a': retry_policy.retryable_failures: 'cosmic'", id="failure-kind"),
])
def test_pipeline_refusals_name_the_stage_and_the_field(stages: list[otto.PipelineStage],
                                                        says: str) -> None:
    with pytest.raises(oc.BadRequest, match=says):
        oc.pipeline_of(otto.PipelineRequest(stages=stages), WORKER, 10)


# ---------------------------------------------------------------- PipelineProgress


def test_progress_view_follows_the_stages() -> None:
    stages = ("a", "b")
    view = oc.ProgressView("b-1", stages)
    waiting = tuple(StageStatus(n, StageState.WAITING) for n in stages)
    now = {"a": StageStatus("a", StageState.SUCCEEDED, (), 1, 1, 1, 100.0, 103.0),
           "b": StageStatus("b", StageState.RUNNING, ("a",), 1, 2, 0, 103.0)}
    events = [
        ProgressEvent(100.0, "b-1", BuildState.RUNNING, message="started", stages=waiting),
        ProgressEvent(100.0, "b-1", BuildState.RUNNING, "a", StageState.RUNNING),
        ProgressEvent(101.0, "b-1", BuildState.RUNNING, "a", StageState.RUNNING, 1, 0, "w-a-0"),
        ProgressEvent(103.0, "b-1", BuildState.RUNNING, "a", StageState.SUCCEEDED),
        ProgressEvent(104.0, "b-1", BuildState.RUNNING, "b", StageState.RETRYING),
    ]
    out = [view.message((i + 1, e), now, 105.0) for i, e in enumerate(events)]
    assert [m.status for m in out] == [otto.STAGE_PENDING, otto.STAGE_RUNNING,
                                       otto.STAGE_RUNNING, otto.STAGE_COMPLETED,
                                       otto.STAGE_RETRYING]
    assert [m.progress_percentage for m in out] == [0, 0, 0, 50, 50]
    assert list(out[3].worker_pod_names) == ["w-a-0"]
    assert (out[3].metrics.duration_seconds, out[3].metrics.successful_workers,
            out[3].metrics.total_workers) == (3, 1, 1)
    assert out[3].completed_at.endswith("Z") and out[4].completed_at == ""
    last = view.message((6, ProgressEvent(
        110.0, "b-1", BuildState.SUCCEEDED, message="done",
        stages=tuple(StageStatus(n, StageState.SUCCEEDED) for n in stages))), now, 110.0)
    assert (last.stage_id, last.status, last.progress_percentage) == ("", otto.STAGE_COMPLETED,
                                                                      100)
    missed = view.message(Missed(1, 4), now, 111.0)
    assert "4 progress message(s)" in missed.message
