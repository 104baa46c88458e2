"""The live view of a pipeline build (pure, no I/O): progress and log lines → state → rich
renderables, plain lines and JSON lines.

The client (workers/client.py) turns the gRPC messages into `Progress` and `LogRecord` values;
`Continuity` checks their sequence numbers (a `missed` count is a warning, an unexplained gap an
error); `LiveState` folds them into the build's state; the functions below draw it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from devtrip_scale.core.errors import ApiError, ExitCode
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
    shown_attempt,
)

LOG_TAIL = 8   # log lines kept (and shown) per running stage
WAITING_SHOWN = 90   # characters of a waiting pod's reason in the tree (all of it in the lines)

# state → (symbol, rich style)
STAGE_LOOK: dict[StageState, tuple[str, str]] = {
    StageState.WAITING: ("·", "dim"),
    StageState.RUNNING: ("▶", "cyan"),
    StageState.RETRYING: ("↻", "yellow"),
    StageState.SUCCEEDED: ("✓", "green"),
    StageState.FAILED: ("✗", "red"),
    StageState.SKIPPED: ("-", "dim"),
    StageState.CANCELLED: ("■", "magenta"),
}
BUILD_LOOK: dict[BuildState, tuple[str, str]] = {
    BuildState.RUNNING: ("▶", "cyan"),
    BuildState.SUCCEEDED: ("✓", "green"),
    BuildState.FAILED: ("✗", "red"),
    BuildState.CANCELLED: ("■", "magenta"),
}
# states whose message is worth showing beside the stage
_EXPLAINED = (StageState.FAILED, StageState.SKIPPED, StageState.RETRYING, StageState.CANCELLED)
_ACTIVE = (StageState.RUNNING, StageState.RETRYING)


@dataclass(frozen=True)
class Progress:
    """One PipelineProgress message as the client received it."""

    sequence: int
    event: ProgressEvent
    missed: int = 0        # > 0: the server dropped this many messages before this one


@dataclass(frozen=True)
class LogRecord:
    """One LogEntry as the client received it."""

    sequence: int
    line: LogLine
    missed: int = 0


class Continuity:
    """The sequence rule of a resumable stream: each message is the last one + 1.

    `accept` returns False for a message already seen (a resumed stream may repeat one), and
    a warning when the server says it dropped messages (`missed`); a gap the server does not
    own up to raises ApiError: nothing is lost silently.
    """

    def __init__(self, what: str = "progress messages", last: int = 0,
                 check_gaps: bool = True) -> None:
        self.what = what
        self.last = last
        self.check_gaps = check_gaps   # off where a filter makes gaps normal (logs of a stage)
        self.lost = 0

    def accept(self, sequence: int, missed: int = 0) -> tuple[bool, str | None]:
        """(keep it?, a warning to show or None)."""
        if sequence <= self.last:
            return False, None
        gap = sequence - self.last - 1
        if self.check_gaps and gap > missed:
            first, last = self.last + 1, sequence - 1
            span = str(first) if first == last else f"{first}-{last}"
            raise ApiError(f"the server skipped {self.what} {span} without saying so "
                           f"(got {sequence} after {self.last}); the stream cannot be trusted")
        self.last = sequence
        if missed > 0:
            self.lost += missed
            return True, f"{missed} {self.what} were lost before #{sequence} (the server dropped "\
                "them: this client fell too far behind)"
        return True, None


@dataclass
class StageView:
    """A stage as the live view knows it."""

    name: str
    state: StageState = StageState.WAITING
    needs: tuple[str, ...] = ()
    attempt: int = 0
    workers: int = 1
    workers_succeeded: int = 0
    started: float | None = None
    finished: float | None = None
    message: str = ""
    workers_running: set[int] = field(default_factory=set)   # indexes running now
    workers_done: set[int] = field(default_factory=set)      # indexes that succeeded
    waiting: dict[int, str] = field(default_factory=dict)    # index → why it is not running

    @property
    def succeeded(self) -> int:
        """Workers that succeeded, from the per-worker events (the snapshots of the first and
        last message say it too; the larger is right)."""
        return max(self.workers_succeeded, len(self.workers_done))

    @classmethod
    def of(cls, s: StageStatus) -> StageView:
        return cls(s.name, s.state, s.needs, s.attempt, s.workers, s.workers_succeeded,
                   s.started, s.finished, s.message)

    def duration(self, now: float) -> float | None:
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else now
        return max(0.0, end - self.started)


@dataclass
class LiveState:
    """A build's state, folded from its progress messages and log lines."""

    build_id: str = ""
    pipeline: str = ""
    state: BuildState = BuildState.RUNNING
    stages: dict[str, StageView] = field(default_factory=dict)
    logs: dict[str, deque[LogLine]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    last_sequence: int = 0
    tail: int = LOG_TAIL

    @property
    def done(self) -> bool:
        return self.state is not BuildState.RUNNING

    def apply(self, p: Progress) -> None:
        """Fold one progress message in (the caller has checked its sequence)."""
        e = p.event
        self.last_sequence = p.sequence
        if e.build_id:
            self.build_id = e.build_id
        if self.started is None:
            self.started = e.time
        if e.stages:
            self.stages = {s.name: StageView.of(s) for s in e.stages}
        if e.stage and e.stage_state is not None:
            stage = self.stages.setdefault(e.stage, StageView(e.stage))
            stage.state = e.stage_state
            if e.attempt:
                stage.attempt = max(stage.attempt, e.attempt)
            if e.stage_state in _ACTIVE and stage.started is None:
                stage.started = e.time
            if e.stage_state is StageState.RUNNING:
                stage.finished = None
            if e.stage_state.done and stage.finished is None:
                stage.finished = e.time
            if e.stage_state in _EXPLAINED and e.message:
                stage.message = e.message
            elif e.stage_state is StageState.SUCCEEDED:
                stage.message = ""
            if e.stage_state is StageState.SUCCEEDED:   # every worker did
                stage.workers_succeeded = stage.workers
            if e.stage_state.done:
                self.logs.pop(e.stage, None)
                stage.workers_running.clear()
                stage.waiting.clear()
            self._worker(stage, e)
        self.state = e.build_state
        if self.done and self.finished is None:
            self.finished = e.time

    @staticmethod
    def _worker(stage: StageView, e: ProgressEvent) -> None:
        """A worker's own event (`worker 2 running (attempt 0)`, `worker 2 succeeded`): the
        live counts of the stage's workers."""
        if e.worker_index < 0 or stage.state.done:
            return
        said = e.message.removeprefix(f"worker {e.worker_index} ")
        word = said.split(" ", 1)[0]
        if word == "waiting":     # `waiting 6s: Pending: Unschedulable: …`
            stage.waiting[e.worker_index] = said
            return
        stage.waiting.pop(e.worker_index, None)
        if word == "running":
            stage.workers_running.add(e.worker_index)
        elif word:
            stage.workers_running.discard(e.worker_index)
            if word == "succeeded":
                stage.workers_done.add(e.worker_index)

    def add_log(self, line: LogLine) -> None:
        """Keep the line in its stage's tail (shown while the stage runs)."""
        stage = self.stages.get(line.stage)
        if stage is not None and stage.state.done:
            return
        self.logs.setdefault(line.stage, deque(maxlen=self.tail)).append(line)

    def stages_in(self, *states: StageState) -> list[str]:
        return [s.name for s in self.stages.values() if s.state in states]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.state is BuildState.SUCCEEDED else ExitCode.PIPELINE

    def outcome(self) -> str:
        """One sentence: how the build ended and which stages made it so."""
        what = f"build {self.build_id or '?'} {self.state.value}"
        failed = self.stages_in(StageState.FAILED)
        if failed:
            what += f": stage{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed"
        skipped = self.stages_in(StageState.SKIPPED)
        if skipped:
            what += f"; skipped: {', '.join(skipped)}"
        cancelled = self.stages_in(StageState.CANCELLED)
        if cancelled:
            what += f"; cancelled: {', '.join(cancelled)}"
        return what


# ---------------------------------------------------------------- text pieces


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_time(t: float) -> str:
    """HH:MM:SS of a Unix time, UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def stage_label(stage: StageView, now: float) -> Text:
    symbol, style = STAGE_LOOK[stage.state]
    text = Text()
    text.append(f"{symbol} ", style=style)
    text.append(stage.name, style="bold")
    text.append(f"  {stage.state.value}", style=style)
    if stage.attempt > 1:      # a retry: attempts are counted from 0, as in pod names
        text.append(f"  attempt {shown_attempt(stage.attempt)}")
    if stage.workers > 1 and stage.state is not StageState.WAITING:
        text.append(f"  {stage.succeeded}/{stage.workers} workers succeeded")
        if stage.workers_running and not stage.state.done:
            text.append(f", {len(stage.workers_running)} running")
    duration = stage.duration(now)
    if duration is not None and stage.state is not StageState.SKIPPED:
        text.append(f"  {fmt_duration(duration)}", style="dim")
    if stage.state is StageState.WAITING and stage.needs:
        text.append(f"  needs {', '.join(stage.needs)}", style="dim")
    if stage.message and stage.state in _EXPLAINED:
        text.append(f"  — {stage.message}", style=style)
    elif stage.waiting and stage.state in _ACTIVE:   # its pods' phase and reason
        index = min(stage.waiting)
        more = len(stage.waiting) - 1
        note = stage.waiting[index]
        note = note if len(note) <= WAITING_SHOWN else note[:WAITING_SHOWN - 1] + "…"
        text.append(f"  — worker {index} {note}" + (f" (+{more} more)" if more else ""),
                    style="yellow")
    return text


def build_label(state: LiveState, now: float) -> Text:
    symbol, style = BUILD_LOOK[state.state]
    text = Text()
    text.append(f"{symbol} ", style=style)
    text.append(f"build {state.build_id or '…'}", style="bold")
    if state.pipeline:
        text.append(f" ({state.pipeline})")
    text.append(f"  {state.state.value}", style=style)
    if state.started is not None:
        end = state.finished if state.finished is not None else now
        text.append(f"  {fmt_duration(max(0.0, end - state.started))}", style="dim")
    return text


def stage_tree(state: LiveState, now: float) -> Tree:
    """The build and its stages, in the pipeline's order."""
    tree = Tree(build_label(state, now))
    for stage in state.stages.values():
        tree.add(stage_label(stage, now))
    return tree


def log_text(line: LogLine) -> Text:
    text = Text()
    text.append(f"{fmt_time(line.time)} ", style="dim")
    where = f"{line.stage}/{line.pod}" if line.stage else line.pod
    text.append(where, style="cyan")
    if line.stream == "stderr":
        text.append(" stderr", style="yellow")
    text.append(f" | {line.text}")
    return text


def running_logs(state: LiveState) -> list[Text]:
    """The tail of each running stage's log, stage by stage."""
    out: list[Text] = []
    for stage in state.stages.values():
        if stage.state in _ACTIVE:
            out.extend(log_text(line) for line in state.logs.get(stage.name, ()))
    return out


def view(state: LiveState, now: float) -> RenderableType:
    """The live screen: the stage tree, then the logs of the stages running now, then the
    warnings (lost messages) so far."""
    parts: list[RenderableType] = [stage_tree(state, now)]
    logs = running_logs(state)
    if logs:
        parts.append(Text("logs of running stages:", style="bold"))
        parts.extend(logs)
    parts.extend(Text(f"warning: {w}", style="yellow") for w in state.warnings)
    return Group(*parts)


def summary(state: LiveState, now: float) -> RenderableType:
    """The final picture: the stage tree and one line with the outcome."""
    _, style = BUILD_LOOK[state.state]
    return Group(stage_tree(state, now), Text(state.outcome(), style=f"bold {style}"))


def progress_line(p: Progress) -> str:
    """One progress message as a plain line (off a terminal: no live redraw)."""
    e = p.event
    head = f"{fmt_time(e.time)} #{p.sequence}"
    if e.stage and e.stage_state is not None:
        text = f"{head} stage {e.stage} {e.stage_state.value}"
        if e.attempt > 1:
            text += f" (attempt {shown_attempt(e.attempt)})"
        if e.worker_index >= 0 and e.pod:
            text += f" worker {e.worker_index} {e.pod}"
    else:
        text = f"{head} build {e.build_id} {e.build_state.value}"
    state = e.stage_state if e.stage else e.build_state
    if not e.message or e.message == (state.value if state is not None else ""):
        return text      # "stage lint cancelled", not "cancelled: cancelled"
    return f"{text}: {e.message}"


def log_plain(line: LogLine) -> str:
    where = f"{line.stage}/{line.pod}" if line.stage else line.pod
    stream = " stderr" if line.stream == "stderr" else ""
    return f"{fmt_time(line.time)} {where}{stream} | {line.text}"


def stage_lines(state: LiveState, now: float) -> list[str]:
    """The stage tree as plain lines (status, the end of a run off a terminal)."""
    lines = [build_label(state, now).plain]
    lines.extend(f"  {stage_label(s, now).plain}" for s in state.stages.values())
    return lines


# ---------------------------------------------------------------- JSON lines


def stage_json(s: StageView) -> dict[str, Any]:
    return {"name": s.name, "state": s.state.value, "attempt": shown_attempt(s.attempt),
            "needs": list(s.needs), "workers": s.workers,
            "workersSucceeded": s.succeeded, "started": iso(s.started),
            "finished": iso(s.finished), "message": s.message}


def progress_json(p: Progress) -> dict[str, Any]:
    e = p.event
    return {"type": "progress", "sequence": p.sequence, "buildId": e.build_id,
            "time": iso(e.time), "buildState": e.build_state.value, "stage": e.stage or None,
            "stageState": e.stage_state.value if e.stage_state is not None else None,
            "attempt": shown_attempt(e.attempt),
            "workerIndex": e.worker_index if e.worker_index >= 0 else None,
            "pod": e.pod or None, "message": e.message, "missed": p.missed,
            "stages": [stage_json(StageView.of(s)) for s in e.stages]}


def log_json(r: LogRecord) -> dict[str, Any]:
    line = r.line
    return {"type": "log", "sequence": r.sequence, "buildId": line.build_id,
            "time": iso(line.time), "stage": line.stage, "taskId": line.task_id,
            "worker": line.pod, "index": line.index, "attempt": line.attempt,
            "container": line.container, "stream": line.stream, "message": line.text,
            "missed": r.missed}


def result_json(state: LiveState) -> dict[str, Any]:
    return {"type": "result", "buildId": state.build_id, "state": state.state.value,
            "exitCode": int(state.exit_code),
            "failedStages": state.stages_in(StageState.FAILED),
            "skippedStages": state.stages_in(StageState.SKIPPED),
            "warnings": list(state.warnings)}


def status_json(state: LiveState, last_sequence: int) -> dict[str, Any]:
    """A build's status (`pipeline status -o json`)."""
    return {"buildId": state.build_id, "pipeline": state.pipeline, "state": state.state.value,
            "started": iso(state.started), "finished": iso(state.finished),
            "lastSequence": last_sequence,
            "stages": [stage_json(s) for s in state.stages.values()]}
