"""What a pipeline build reports (pure values): stage and build states, a stage's status, the
progress events of a build's journal and the log lines relayed from its pods.

These are the Python side of devscale.v1's PipelineProgress, StageStatus and LogEntry; the gRPC
layer (workers/api) converts them, the executor and the log relay produce them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StageState(StrEnum):
    WAITING = "waiting"          # its needs are not done yet
    RUNNING = "running"
    RETRYING = "retrying"        # a worker failed and waits for its backoff
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"          # a stage it needs failed, or fail-fast stopped the build
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED,
                        StageState.CANCELLED)


class BuildState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def shown_attempt(attempt: int) -> int | None:
    """An attempt as devscale shows it (text, JSON, results): counted from 0, as pod names
    (`w-<task>-<index>-<attempt>`) and `workers status` count it. The API's `attempt` fields
    count the attempts started (1 = the first; 0 = none yet), which is None here."""
    return attempt - 1 if attempt > 0 else None


@dataclass(frozen=True)
class StageStatus:
    name: str
    state: StageState
    needs: tuple[str, ...] = ()
    attempt: int = 0              # the highest attempt started, 1-based; 0 before it starts
    workers: int = 1
    workers_succeeded: int = 0
    started: float | None = None  # Unix seconds
    finished: float | None = None
    message: str = ""             # why it failed, was skipped or is retrying


@dataclass(frozen=True)
class ProgressEvent:
    """One message of a build's progress; its sequence number is its place in the journal."""

    time: float                   # Unix seconds
    build_id: str
    build_state: BuildState
    stage: str = ""               # empty: a build-level message
    stage_state: StageState | None = None
    attempt: int = 0
    worker_index: int = -1        # -1: not about one worker
    pod: str = ""
    message: str = ""
    stages: tuple[StageStatus, ...] = ()   # the whole build: on the first and the last message


@dataclass(frozen=True)
class LogLine:
    """One line a worker wrote, tagged with where it came from."""

    time: float                   # the kubelet's timestamp of the line, Unix seconds
    text: str
    pod: str
    task_id: str = ""
    build_id: str = ""
    stage: str = ""
    index: int = 0
    attempt: int = 0
    container: str = "worker"
    stream: str = "combined"      # stdout/stderr where the source tells them apart


@dataclass(frozen=True)
class BuildStatus:
    """A build as `pipeline status` shows it."""

    id: str
    pipeline: str
    state: BuildState
    stages: tuple[StageStatus, ...]        # in file order
    started: float                         # Unix seconds
    finished: float | None
    last_sequence: int                     # of the progress journal
    message: str = ""
