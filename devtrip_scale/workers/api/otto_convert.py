"""ottoscaler.v1 messages ↔ devscale's own values (pure): what Ottoscaler's CI server asks for
becomes a task Spec or a Pipeline checked like a pipeline file, and devscale's pods and build
progress become Ottoscaler's WorkerPodStatus and PipelineProgress.

Nothing here does I/O or reads the clock (times are passed in), so every mapping is
unit-tested without a server; otto_service.py does the calls.
"""

from __future__ import annotations

import graphlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from devtrip_scale.workers import INDEX_LABEL, TASK_ID_ANNOTATION, TASK_LABEL
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.pipeline import (
    MAX_STAGE_WORKERS,
    STAGE_NAME,
    STAGE_NAME_MAX,
    Pipeline,
    RetryOn,
)
from devtrip_scale.workers.progress import BuildState, ProgressEvent, StageState, StageStatus
from devtrip_scale.workers.requests import Rejected, ScaleUp, parse
from devtrip_scale.workers.store import Spec
from devtrip_scale.workers.tasks import classify, label_value, task_key

OTTO_DOMAIN = "ottoscaler.devscale.devtrip.io"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ScaleRequest / PipelineRequest fields → (annotation key, label key or "", env name)
_ORIGIN = {"repository": (f"{OTTO_DOMAIN}/repository", "", "OTTO_REPOSITORY"),
           "commit_sha": (f"{OTTO_DOMAIN}/commit-sha", f"{OTTO_DOMAIN}/commit-sha",
                          "OTTO_COMMIT_SHA"),
           "triggered_by": (f"{OTTO_DOMAIN}/triggered-by", f"{OTTO_DOMAIN}/triggered-by",
                            "OTTO_TRIGGERED_BY"),
           "reason": (f"{OTTO_DOMAIN}/reason", "", "OTTO_REASON")}
# Ottoscaler's retryable_failures words → devscale's retry kinds
RETRYABLE: dict[str, RetryOn] = {
    "failed": RetryOn.FAILED, "failure": RetryOn.FAILED, "error": RetryOn.FAILED,
    "exit_code": RetryOn.FAILED, "non_zero_exit": RetryOn.FAILED,
    "timeout": RetryOn.TIMEOUT, "timed_out": RetryOn.TIMEOUT, "deadline": RetryOn.TIMEOUT,
    "evicted": RetryOn.EVICTED, "eviction": RetryOn.EVICTED, "oom": RetryOn.EVICTED,
    "lost": RetryOn.LOST, "node_lost": RetryOn.LOST, "pod_deleted": RetryOn.LOST,
}
STATUS_WORDS = ("pending", "running", "succeeded", "failed")
MAX_RETRIES = 20


class BadRequest(ValueError):
    """A request that must not run: the message names the stage id and the field."""


def rfc3339(seconds: float | None) -> str:
    """Unix seconds as RFC 3339 in UTC (Ottoscaler's times are strings); '' for None."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# ---------------------------------------------------------------- ScaleUp / ScaleDown


def _origin(msg: Any, template: WorkerModel, extra_env: Mapping[str, str] | None = None
            ) -> WorkerModel:
    """`template` with the request's repository, commit, trigger and reason as annotations,
    labels (where a label value fits) and OTTO_* env, plus `extra_env`."""
    env, labels, notes = dict(template.env), dict(template.labels), dict(template.annotations)
    env.update(extra_env or {})
    for name, (note, label, var) in _ORIGIN.items():
        value = str(getattr(msg, name, "") or "")
        if not value:
            continue
        notes[note] = value
        env[var] = value
        if label:
            labels[label] = label_value(value)
    return template.model_copy(update={"env": env, "labels": labels, "annotations": notes})


def _env_keys(values: Mapping[str, str], where: str) -> None:
    for key in values:
        if not _ENV_NAME.match(key):
            raise BadRequest(f"{where}: {key!r} is not an environment variable name (letters, "
                             "digits and '_', not starting with a digit)")


def scale_up_spec(msg: otto.ScaleRequest, entry_id: str, worker: WorkerModel,
                  max_pod_count: int) -> Spec:
    """A ScaleRequest as the Spec of a task: `worker_count` pods of the server's worker
    template, `build_config` as env, the origin fields as annotations/labels/env, `metadata`
    as devscale's request metadata. BadRequest naming the field."""
    if not msg.task_id:
        raise BadRequest("task_id is required: it names the pods, so a retried call creates "
                         "nothing new")
    if not 1 <= msg.worker_count <= max_pod_count:
        raise BadRequest(f"worker_count {msg.worker_count} is outside 1..{max_pod_count} "
                         "(this server's limits.max_pod_count / max_workers)")
    _env_keys(msg.build_config, "build_config")
    fields = {"type": "scale_up", "task_id": msg.task_id, "pod_count": str(msg.worker_count)}
    if msg.metadata:
        fields["metadata"] = json.dumps(dict(msg.metadata))
    request = parse(entry_id, fields, max_pod_count)
    if isinstance(request, Rejected):
        raise BadRequest(request.reason)
    assert isinstance(request, ScaleUp)
    template = _origin(msg, worker, dict(msg.build_config))
    return Spec(request.task_id, request.pod_count, entry_id, request.metadata,
                template=template.model_dump_json())


def _index(pod: Mapping[str, Any]) -> int:
    try:
        return int((pod["metadata"].get("labels") or {}).get(INDEX_LABEL, 0))
    except ValueError:
        return 0


def is_pending(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in (None, "Pending")


def surplus(pods: Iterable[Mapping[str, Any]], keep: int) -> list[Mapping[str, Any]]:
    """The live pods to stop so that `keep` stay: pending ones first (they have done nothing
    yet), then running ones, the highest index first within each."""
    live = [p for p in pods if classify(p) is None and not p["metadata"].get(
        "deletionTimestamp")]
    order = sorted(live, key=lambda p: (not is_pending(p), -_index(p)))
    return order[:max(0, len(live) - keep)]


def task_pods(pods: Iterable[Mapping[str, Any]], task_id: str) -> list[Mapping[str, Any]]:
    key = task_key(task_id)
    return [p for p in pods if (p["metadata"].get("labels") or {}).get(TASK_LABEL) == key]


# ---------------------------------------------------------------- GetWorkerStatus


def status_word(pod: Mapping[str, Any]) -> str:
    """pending, running, succeeded or failed (Ottoscaler's words for a pod's phase)."""
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return {"Running": "running", "Succeeded": "succeeded", "Failed": "failed"}.get(phase,
                                                                                     "pending")


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated")
        if t:
            return dict(t)
    return {}


def pod_status(pod: Mapping[str, Any]) -> otto.WorkerPodStatus:
    meta, status = pod["metadata"], pod.get("status") or {}
    done = _terminated(pod)
    word = status_word(pod)
    error = ""
    if word == "failed":
        error = str(done.get("message") or status.get("message") or done.get("reason") or
                    status.get("reason") or "")
        if "exitCode" in done:
            error = f"exit code {done['exitCode']}" + (f": {error}" if error else "")
    return otto.WorkerPodStatus(
        pod_name=str(meta.get("name", "")),
        task_id=str((meta.get("annotations") or {}).get(TASK_ID_ANNOTATION, "")),
        status=word, created_at=str(meta.get("creationTimestamp") or ""),
        started_at=str(status.get("startTime") or ""),
        completed_at=str(done.get("finishedAt") or ""),
        node_name=str((pod.get("spec") or {}).get("nodeName") or ""),
        pod_ip=str(status.get("podIP") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        error_message=error)


def worker_status(pods: Iterable[Mapping[str, Any]], msg: otto.WorkerStatusRequest
                  ) -> otto.WorkerStatusResponse:
    """The worker pods (not those being deleted) that match every filter given; the counts
    are of the workers returned. BadRequest for an unknown status_filter."""
    wanted = msg.status_filter.strip().lower()
    if wanted and wanted not in STATUS_WORDS:
        raise BadRequest(f"status_filter {msg.status_filter!r} is not one of "
                         f"{', '.join(STATUS_WORDS)} (or empty: all)")
    key = task_key(msg.task_id) if msg.task_id else None
    out = otto.WorkerStatusResponse()
    for pod in sorted(pods, key=lambda p: str(p["metadata"].get("name", ""))):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        if key is not None and (meta.get("labels") or {}).get(TASK_LABEL) != key:
            continue
        if msg.worker_pod_name and meta.get("name") != msg.worker_pod_name:
            continue
        word = status_word(pod)
        if wanted and word != wanted:
            continue
        out.workers.append(pod_status(pod))
        setattr(out, f"{word}_count", getattr(out, f"{word}_count") + 1)
        out.total_count += 1
    return out


# ---------------------------------------------------------------- ExecutePipeline

_PROTO_FIELD = {"name": "stage_id", "workers": "worker_count", "needs": "depends_on",
                "env": "config", "timeout_seconds": "timeout_seconds", "retry": "retry_policy",
                "image": "image", "command": "command", "args": "args"}


def _stage_where(stage_id: str, i: int) -> str:
    return f"stage {stage_id!r}" if stage_id else f"stages[{i}]"


def pipeline_of(msg: otto.PipelineRequest, worker: WorkerModel, max_workers: int) -> Pipeline:
    """PipelineRequest's inline stages as a devscale Pipeline, checked like a pipeline file:
    BadRequest naming the stage id and the field (proto names) for the first problem.

    depends_on → needs, worker_count → workers (0: 1), config → env, image/command/args over
    the server's worker template (its resources, labels and the rest kept), timeout_seconds
    (0: none), retry_policy → retry (max_attempts retries after the first attempt, as
    Ottoscaler counts them; retry_delay_seconds a fixed delay; retryable_failures → kinds)."""
    if not msg.stages:
        raise BadRequest("stages: a pipeline needs at least one stage")
    limit = min(max_workers, MAX_STAGE_WORKERS)
    seen: dict[str, int] = {}
    for i, s in enumerate(msg.stages):
        where = _stage_where(s.stage_id, i)
        if not s.stage_id:
            raise BadRequest(f"{where}: stage_id is required")
        if len(s.stage_id) > STAGE_NAME_MAX or not STAGE_NAME.match(s.stage_id):
            raise BadRequest(f"{where}: stage_id: lower-case letters, digits and '-', at most "
                             f"{STAGE_NAME_MAX} characters (it goes into pod names)")
        if s.stage_id in seen:
            raise BadRequest(f"{where}: stage_id: duplicate (stages[{seen[s.stage_id]}] has "
                             "it too)")
        seen[s.stage_id] = i
    for i, s in enumerate(msg.stages):
        where = _stage_where(s.stage_id, i)
        if not 0 <= s.worker_count <= limit:
            raise BadRequest(f"{where}: worker_count {s.worker_count} is outside 1..{limit}")
        for need in s.depends_on:
            if need == s.stage_id:
                raise BadRequest(f"{where}: depends_on: the stage depends on itself")
            if need not in seen:
                raise BadRequest(f"{where}: depends_on: {need!r} is not a stage of this "
                                 f"pipeline (stages: {', '.join(sorted(seen))})")
        _env_keys(s.config, f"{where}: config")
        if s.timeout_seconds < 0:
            raise BadRequest(f"{where}: timeout_seconds {s.timeout_seconds} is negative (0: "
                             "no timeout)")
        rp = s.retry_policy
        if not 0 <= rp.max_attempts <= MAX_RETRIES:
            raise BadRequest(f"{where}: retry_policy.max_attempts {rp.max_attempts} is outside "
                             f"0..{MAX_RETRIES}")
        if not 0 <= rp.retry_delay_seconds <= 3600:
            raise BadRequest(f"{where}: retry_policy.retry_delay_seconds "
                             f"{rp.retry_delay_seconds} is outside 0..3600")
        for word in rp.retryable_failures:
            if word.strip().lower() not in RETRYABLE:
                raise BadRequest(f"{where}: retry_policy.retryable_failures: {word!r} is not "
                                 f"one of {', '.join(sorted(RETRYABLE))}")
    sorter = graphlib.TopologicalSorter({s.stage_id: tuple(s.depends_on) for s in msg.stages})
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        cycle: list[str] = list(e.args[1])
        raise BadRequest(f"stage {cycle[1]!r}: depends_on: the stages depend on each other in "
                         f"a cycle: {' → '.join(reversed(cycle))}") from None
    stages = [_stage(msg, s, worker) for s in msg.stages]
    name = msg.name or msg.pipeline_id or "ottoscaler pipeline"
    try:
        return Pipeline.model_validate({"name": name[:253], "stages": stages})
    except ValidationError as e:
        first = e.errors()[0]
        loc = first["loc"]
        if len(loc) >= 3 and loc[0] == "stages" and isinstance(loc[1], int):
            s = msg.stages[loc[1]]
            proto = _PROTO_FIELD.get(str(loc[2]), str(loc[2]))
            raise BadRequest(f"{_stage_where(s.stage_id, loc[1])}: {proto}: "
                             f"{first['msg']}") from None
        raise BadRequest(f"{'.'.join(map(str, loc))}: {first['msg']}") from None


def _stage(msg: otto.PipelineRequest, s: otto.PipelineStage, worker: WorkerModel
           ) -> dict[str, Any]:
    extra = dict(s.config)
    if s.type:
        extra["OTTO_STAGE_TYPE"] = s.type
    if s.name:
        extra["OTTO_STAGE_NAME"] = s.name
    template = _origin(msg, worker, extra)
    doc = template.model_dump(mode="json")
    rp = s.retry_policy
    kinds = sorted({RETRYABLE[w.strip().lower()] for w in rp.retryable_failures})
    retry: dict[str, Any] = {"limit": rp.max_attempts, "backoff_seconds": rp.retry_delay_seconds,
                             "backoff_factor": 1}
    if kinds:
        retry["on"] = [k.value for k in kinds]
    doc.update({"name": s.stage_id, "needs": list(s.depends_on),
                "workers": s.worker_count or 1, "retry": retry,
                "timeout_seconds": s.timeout_seconds or None})
    if s.image:
        doc["image"] = s.image
    if s.command:
        doc["command"] = list(s.command)
    if s.args:
        doc["args"] = list(s.args)
    return doc


# ---------------------------------------------------------------- PipelineProgress

STAGE_STATUS: dict[StageState, otto.StageStatus] = {
    StageState.WAITING: otto.STAGE_PENDING,
    StageState.RUNNING: otto.STAGE_RUNNING,
    StageState.RETRYING: otto.STAGE_RETRYING,
    StageState.SUCCEEDED: otto.STAGE_COMPLETED,
    StageState.FAILED: otto.STAGE_FAILED,
    StageState.SKIPPED: otto.STAGE_SKIPPED,
    StageState.CANCELLED: otto.STAGE_CANCELLED,
}
BUILD_STATUS: dict[BuildState, otto.StageStatus] = {
    BuildState.RUNNING: otto.STAGE_RUNNING,
    BuildState.SUCCEEDED: otto.STAGE_COMPLETED,
    BuildState.FAILED: otto.STAGE_FAILED,
    BuildState.CANCELLED: otto.STAGE_CANCELLED,
}


@dataclass
class ProgressView:
    """Turns one build's progress journal, read in order, into PipelineProgress messages
    (one per journal entry). It follows the stages' states as the entries tell them, so that
    `progress_percentage` (stages done × 100 / stages) and each stage's worker pod names are
    those of that point of the build, on a live stream and on a replay alike."""

    build_id: str
    stages: Sequence[str]
    states: dict[str, StageState] = field(default_factory=dict)
    pods: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.stages:
            self.states.setdefault(name, StageState.WAITING)
            self.pods.setdefault(name, [])

    @property
    def percentage(self) -> int:
        done = sum(1 for s in self.states.values() if s.done)
        return done * 100 // max(1, len(self.states))

    def message(self, item: tuple[int, ProgressEvent] | Missed,
                now: Mapping[str, StageStatus], clock: float) -> otto.PipelineProgress:
        """The message for one journal entry. `now`: the stages' status as the build has them
        at the time of sending (for times and worker counts), `clock`: that time."""
        if isinstance(item, Missed):
            return otto.PipelineProgress(
                pipeline_id=self.build_id, status=otto.STAGE_RUNNING,
                message=f"{item.count} progress message(s) were trimmed before this reader got "
                        "them", progress_percentage=self.percentage, timestamp=rfc3339(clock))
        _, e = item
        for s in e.stages:
            self.states[s.name] = s.state
        if e.stage and e.stage_state is not None:
            self.states[e.stage] = e.stage_state
        if e.stage and e.pod and e.pod not in self.pods.setdefault(e.stage, []):
            self.pods[e.stage].append(e.pod)
        out = otto.PipelineProgress(pipeline_id=self.build_id, stage_id=e.stage,
                                    message=e.message, progress_percentage=self.percentage,
                                    timestamp=rfc3339(e.time))
        if not e.stage:                   # a build-level message: the first, the last
            first = e.build_state is BuildState.RUNNING and e.stages
            out.status = otto.STAGE_PENDING if first else BUILD_STATUS[e.build_state]
            if e.build_state is BuildState.FAILED:
                out.error_message = e.message
            return out
        state = e.stage_state or self.states.get(e.stage, StageState.WAITING)
        out.status = STAGE_STATUS[state]
        out.worker_pod_names.extend(self.pods.get(e.stage, []))
        st = now.get(e.stage)
        if st is not None:
            out.started_at = rfc3339(st.started)
            out.completed_at = rfc3339(st.finished) if state.done else ""
            end = st.finished if st.finished is not None and state.done else clock
            failed = st.workers - st.workers_succeeded if state is StageState.FAILED else 0
            out.metrics.CopyFrom(otto.StageMetrics(
                duration_seconds=int(max(0.0, end - st.started)) if st.started else 0,
                successful_workers=st.workers_succeeded,
                failed_workers=failed, total_workers=st.workers))
        if state is StageState.FAILED:
            out.error_message = e.message
        return out
