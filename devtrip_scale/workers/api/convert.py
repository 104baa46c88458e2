"""Python values ↔ devscale.v1 protobuf messages, and devscale errors → gRPC status codes (pure).

The servicers (services.py) do the I/O; everything they send or accept is shaped here, so the
mapping is unit-tested without a server. Requests are checked by the same rules as the Redis
stream's (workers/requests.py), so both doors refuse the same things with the same reasons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from redis.exceptions import RedisError

from devtrip_scale.core.errors import (
    ConfigError,
    DevscaleError,
    KubeError,
    KubeForbidden,
    KubeNotFound,
)
from devtrip_scale.workers import BUILD_LABEL, STAGE_LABEL, status
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
)
from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, parse
from devtrip_scale.workers.tasks import Capacity

if TYPE_CHECKING:
    from devtrip_scale.workers.progress import BuildStatus

GRPC_ENTRY_PREFIX = "grpc-"           # the entry id of a request that came as a gRPC call
# StreamBuildLogs' trailing metadata when it sent no line: one "pod: why" per silent pod
SILENT_POD_KEY = "devscale-silent-pod"

_STAGE_STATES: dict[StageState, pb.StageState] = {
    StageState.WAITING: pb.STAGE_STATE_WAITING,
    StageState.RUNNING: pb.STAGE_STATE_RUNNING,
    StageState.RETRYING: pb.STAGE_STATE_RETRYING,
    StageState.SUCCEEDED: pb.STAGE_STATE_SUCCEEDED,
    StageState.FAILED: pb.STAGE_STATE_FAILED,
    StageState.SKIPPED: pb.STAGE_STATE_SKIPPED,
    StageState.CANCELLED: pb.STAGE_STATE_CANCELLED,
}
_BUILD_STATES: dict[BuildState, pb.PipelineState] = {
    BuildState.RUNNING: pb.PIPELINE_STATE_RUNNING,
    BuildState.SUCCEEDED: pb.PIPELINE_STATE_SUCCEEDED,
    BuildState.FAILED: pb.PIPELINE_STATE_FAILED,
    BuildState.CANCELLED: pb.PIPELINE_STATE_CANCELLED,
}
_STAGE_STATES_OF: dict[int, StageState] = {int(v): k for k, v in _STAGE_STATES.items()}
_BUILD_STATES_OF: dict[int, BuildState] = {int(v): k for k, v in _BUILD_STATES.items()}


# ---------------------------------------------------------------- requests


def scale_up_request(msg: pb.ScaleUpRequest, entry_id: str,
                     max_pod_count: int) -> ScaleUp | Rejected:
    """A ScaleUpRequest as the stream's ScaleUp, or why it is refused (INVALID_ARGUMENT)."""
    if not msg.task_id:
        return Rejected(entry_id, "task_id is required: it names the pods, so a retried call "
                                  "creates nothing new")
    if not 1 <= msg.pod_count <= max_pod_count:
        return Rejected(entry_id, f"pod_count {msg.pod_count} is outside 1..{max_pod_count}")
    fields = {"type": "scale_up", "task_id": msg.task_id, "pod_count": str(msg.pod_count)}
    if msg.metadata:
        fields["metadata"] = json.dumps(dict(msg.metadata))
    request = parse(entry_id, fields, max_pod_count)
    assert not isinstance(request, ScaleDown)
    return request


def scale_down_request(msg: pb.ScaleDownRequest, entry_id: str) -> ScaleDown | Rejected:
    if not msg.task_id:
        return Rejected(entry_id, "task_id is required: the task to cancel")
    request = parse(entry_id, {"type": "scale_down", "task_id": msg.task_id}, 1)
    assert not isinstance(request, ScaleUp)
    return request


# ---------------------------------------------------------------- workers


def stamp(field: Any, seconds: float | None) -> None:
    """Set a google.protobuf.Timestamp field of a message from Unix seconds (None: unset)."""
    if seconds is not None:
        field.FromDatetime(datetime.fromtimestamp(seconds, UTC))


def worker_status(pods: Iterable[Mapping[str, Any]], task_id: str,
                  capacity: Capacity) -> pb.WorkerStatusResponse:
    """The pods the watch holds, by task (only `task_id`'s when given), plus the cap numbers."""
    pods = list(pods)
    build_of = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}) for p in pods}
    out = pb.WorkerStatusResponse(max_workers=capacity.limit, live_workers=len(capacity.live),
                                  queued_workers=capacity.waiting)
    for task in status.tasks(dict(p) for p in pods):
        if task_id and task["taskId"] != task_id:
            continue
        t = out.tasks.add(task_id=str(task["taskId"]))
        for phase, n in task["phases"].items():
            t.phases[phase] = n
        for p in task["pods"]:
            labels = build_of.get(p["name"], {})
            w = t.workers.add(pod=p["name"], index=p["index"], attempt=p["attempt"],
                              phase=p["phase"], node=p["node"] or "",
                              build_id=labels.get(BUILD_LABEL, ""),
                              stage=labels.get(STAGE_LABEL, ""))
            if p["exitCode"] is not None:
                w.has_exit_code, w.exit_code = True, p["exitCode"]
    return out


# ---------------------------------------------------------------- pipelines


def stage_state(state: StageState | None) -> pb.StageState:
    return pb.STAGE_STATE_UNSPECIFIED if state is None else _STAGE_STATES[state]


def pipeline_state(state: BuildState) -> pb.PipelineState:
    return _BUILD_STATES[state]


def stage_status(stage: StageStatus) -> pb.StageStatus:
    msg = pb.StageStatus(name=stage.name, state=stage_state(stage.state), attempt=stage.attempt,
                         needs=list(stage.needs), workers=stage.workers,
                         workers_succeeded=stage.workers_succeeded, message=stage.message)
    stamp(msg.started, stage.started)
    stamp(msg.finished, stage.finished)
    return msg


def progress(item: tuple[int, ProgressEvent] | Missed, build_id: str) -> pb.PipelineProgress:
    """One journal item as a PipelineProgress: an event with its sequence, or a gap (`missed`
    set, `sequence` the last one missed, so a client resuming after it loses nothing more)."""
    if isinstance(item, Missed):
        return pb.PipelineProgress(sequence=item.last, build_id=build_id, missed=item.count)
    seq, e = item
    msg = pb.PipelineProgress(
        sequence=seq, build_id=e.build_id,
        pipeline_state=pipeline_state(e.build_state), stage=e.stage,
        stage_state=stage_state(e.stage_state), attempt=e.attempt,
        worker_index=e.worker_index, pod=e.pod, message=e.message,
        stages=[stage_status(s) for s in e.stages])
    stamp(msg.time, e.time)
    return msg


# ---------------------------------------------------------------- messages → values (clients)


def seconds_of(msg: Any, name: str) -> float | None:
    """A Timestamp field as Unix seconds; None when it is not set."""
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    return float(ts.seconds) + float(ts.nanos) / 1e9


def stage_state_of(value: int) -> StageState | None:
    return _STAGE_STATES_OF.get(value)


def build_state_of(value: int) -> BuildState:
    """UNSPECIFIED (an older server, or a gap message) reads as running."""
    return _BUILD_STATES_OF.get(value, BuildState.RUNNING)


def stage_of(s: pb.StageStatus) -> StageStatus:
    return StageStatus(name=s.name, state=stage_state_of(s.state) or StageState.WAITING,
                       needs=tuple(s.needs), attempt=s.attempt, workers=s.workers,
                       workers_succeeded=s.workers_succeeded, started=seconds_of(s, "started"),
                       finished=seconds_of(s, "finished"), message=s.message)


def event_of(m: pb.PipelineProgress) -> ProgressEvent:
    """A PipelineProgress as the event it was made from (its sequence and `missed` aside)."""
    return ProgressEvent(
        time=seconds_of(m, "time") or time.time(), build_id=m.build_id,
        build_state=build_state_of(m.pipeline_state), stage=m.stage,
        stage_state=stage_state_of(m.stage_state), attempt=m.attempt,
        worker_index=m.worker_index if m.pod else -1, pod=m.pod, message=m.message,
        stages=tuple(stage_of(s) for s in m.stages))


def line_of(m: pb.LogEntry) -> LogLine:
    return LogLine(time=seconds_of(m, "time") or time.time(), text=m.message, pod=m.worker,
                   task_id=m.task_id, build_id=m.build_id, stage=m.stage, index=m.index,
                   attempt=m.attempt, container=m.container or "worker",
                   stream=m.stream or "combined")


def pipeline_status(build: BuildStatus) -> pb.PipelineStatus:
    msg = pb.PipelineStatus(build_id=build.id, pipeline=build.pipeline,
                            state=pipeline_state(build.state),
                            stages=[stage_status(s) for s in build.stages],
                            last_sequence=build.last_sequence)
    stamp(msg.started, build.started)
    stamp(msg.finished, build.finished)
    return msg


# ---------------------------------------------------------------- logs


def log_entry(item: tuple[int, LogLine] | Missed, build_id: str = "") -> pb.LogEntry:
    """One log line (or a gap: `missed` set) as a LogEntry."""
    if isinstance(item, Missed):
        return pb.LogEntry(sequence=item.last, build_id=build_id, missed=item.count)
    seq, line = item
    msg = pb.LogEntry(sequence=seq, build_id=line.build_id, stage=line.stage,
                      task_id=line.task_id, worker=line.pod, index=line.index,
                      attempt=line.attempt, container=line.container, stream=line.stream,
                      message=line.text)
    stamp(msg.time, line.time)
    return msg


def wanted(line: LogLine, stages: Iterable[str]) -> bool:
    """A StreamBuildLogs stage filter: every line when no stage is named."""
    names = set(stages)
    return not names or line.stage in names


# ---------------------------------------------------------------- errors


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status a devscale error is reported with (its message goes with it)."""
    if isinstance(error, KubeForbidden):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, KubeNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, KubeError):
        # no HTTP status: the API server was not reached, or did not answer in time
        return grpc.StatusCode.UNAVAILABLE if error.status is None or error.status >= 500 \
            else grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, ConfigError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, RedisError | OSError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, DevscaleError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL
