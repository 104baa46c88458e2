"""The push direction of ottoscaler.v1: devscale as a client of the CI server's
OttoHandlerLogService, forwarding every relayed worker log line and every worker transition.

Log lines (ForwardWorkerLogs, one bidirectional stream): each line the log relay takes gets the
next sequence number (`metadata["sequence"]`, with `metadata["stream_epoch"]` naming this
process's run) and waits in a bounded queue. The sender writes the oldest line and waits for its
answer before the next one, so order holds whatever the answers are: ACK → the next line; RETRY
→ the same line again (after `throttle_ms`, or a short backoff; given up after MAX_RETRIES and
counted); DROP → counted, the next line; `throttle_ms` on any answer → that pause before the
next write. A stream that breaks (the CI server down or restarting) is opened again with
backoff and resumes from the oldest unacknowledged line: a line is never lost silently, and at
worst sent again after a break — the CI server keeps it once by its sequence number.

Worker transitions (NotifyWorkerStatus): from the pod watch's events, each worker's CREATED →
RUNNING → COMPLETED / FAILED, or TERMINATED when it is deleted before it ended, each once and in
that order (a step the watch did not see, e.g. a pod already Succeeded at first sight, is filled
in), sent one by one and retried with backoff until answered.

Nothing here slows a build: the hooks only append to bounded queues; lines beyond
`queue_limit` are counted as overflow and said (their sequence numbers are skipped, so the CI
server sees the gap too). A build's result carries its counts (`otto_forwarded`, `otto_dropped`,
`otto_overflow`, `otto_gave_up`, `otto_unsettled`), after waiting at most
`report_wait_seconds` for its lines to be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.workers import ATTEMPT_LABEL, BUILD_LABEL, INDEX_LABEL, TASK_ID_ANNOTATION
from devtrip_scale.workers.api.otto_convert import rfc3339
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2_grpc as otto_grpc
from devtrip_scale.workers.config import OttoHandlerModel
from devtrip_scale.workers.progress import LogLine

if TYPE_CHECKING:
    from devtrip_scale.workers.server import WorkerServer

log = logging.getLogger("devscale.workers.ottohandler")
MAX_RETRIES = 50            # RETRY answers for one line before it is given up (and counted)
STATUS_LIMIT = 100_000      # worker transitions held for the CI server
Status = otto.WorkerStatusNotification.StatusType
CREATED, RUNNING, COMPLETED, FAILED, TERMINATED = (
    otto.WorkerStatusNotification.CREATED, otto.WorkerStatusNotification.RUNNING,
    otto.WorkerStatusNotification.COMPLETED, otto.WorkerStatusNotification.FAILED,
    otto.WorkerStatusNotification.TERMINATED)
ENDS = (COMPLETED, FAILED, TERMINATED)


# ---------------------------------------------------------------- pure parts


def transitions(sent: tuple[int, ...], kind: str, pod: Mapping[str, Any]) -> list[int]:
    """The worker states to tell next for a pod event, given those told already (in order):
    CREATED, then RUNNING, then one of COMPLETED / FAILED / TERMINATED, each once. A pod that
    ended is told RUNNING first if it ever started; one deleted before it ended, TERMINATED."""
    if any(s in ENDS for s in sent):
        return []
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    deleting = kind == "DELETED" or bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    want: list[int] = [CREATED]
    started = RUNNING in sent or phase == "Running" or (
        bool(status.get("startTime")) and phase in ("Succeeded", "Failed"))
    if started:
        want.append(RUNNING)
    if phase == "Succeeded":
        want.append(COMPLETED)
    elif phase == "Failed":
        want.append(FAILED)
    elif deleting:
        want.append(TERMINATED)
    return [s for s in want if s not in sent]


def log_entry(line: LogLine, sequence: int, epoch: str, namespace: str) -> otto.WorkerLogEntry:
    """A relayed line as Ottoscaler's WorkerLogEntry (the sequence in its metadata)."""
    labels = {BUILD_LABEL: line.build_id, "devscale.devtrip.io/stage": line.stage,
              INDEX_LABEL: str(line.index), ATTEMPT_LABEL: str(line.attempt)}
    meta = {"sequence": str(sequence), "stream_epoch": epoch, "container": line.container}
    if line.build_id:
        meta.update({"build_id": line.build_id, "stage": line.stage})
    return otto.WorkerLogEntry(
        worker_id=line.pod, task_id=line.task_id, timestamp=rfc3339(line.time), level="INFO",
        source=line.stream, message=line.text,
        pod_metadata=otto.WorkerMetadata(pod_name=line.pod, namespace=namespace,
                                         labels={k: v for k, v in labels.items() if v}),
        metadata=meta)


def notification(pod: Mapping[str, Any], state: int, now: float) -> otto.WorkerStatusNotification:
    meta = pod.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("message") or "")
    extra = {k: str(labels[v]) for k, v in (("build_id", BUILD_LABEL), ("index", INDEX_LABEL),
                                             ("attempt", ATTEMPT_LABEL)) if v in labels}
    return otto.WorkerStatusNotification(
        worker_id=str(meta.get("name", "")), task_id=str(notes.get(TASK_ID_ANNOTATION, "")),
        status=state, timestamp=rfc3339(now), reason=reason, metadata=extra)  # type: ignore[arg-type]


@dataclass
class _Line:
    sequence: int
    entry: otto.WorkerLogEntry
    build: str


@dataclass
class Counts:
    """What became of one build's lines (or, under "", of lines of no build)."""

    forwarded: int = 0
    dropped: int = 0
    overflow: int = 0
    gave_up: int = 0

    def fields(self, unsettled: int) -> dict[str, str]:
        return {"otto_forwarded": str(self.forwarded), "otto_dropped": str(self.dropped),
                "otto_overflow": str(self.overflow), "otto_gave_up": str(self.gave_up),
                "otto_unsettled": str(unsettled)}


# ---------------------------------------------------------------- the forwarder


@dataclass
class OttoForwarder:
    """Forwards lines and worker states to the CI server; see the module docstring."""

    settings: OttoHandlerModel
    token: str | None = None
    namespace: str = "default"
    say: Callable[[str], None] = field(default=lambda text: log.info("%s", text))
    clock: Callable[[], float] = time.time
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    lines: deque[_Line] = field(default_factory=deque)
    statuses: deque[otto.WorkerStatusNotification] = field(default_factory=deque)
    counts: dict[str, Counts] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)
    sequence: int = 0
    acked: int = 0                   # the sequence of the last line answered
    connected: bool = False
    _told: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _wake_lines: asyncio.Event = field(default_factory=asyncio.Event)
    _wake_statuses: asyncio.Event = field(default_factory=asyncio.Event)
    _settled: asyncio.Event = field(default_factory=asyncio.Event)
    _overflowing: bool = False
    _channel: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # ------------------------------------------------------------ wiring

    @classmethod
    def attach(cls, server: WorkerServer, settings: OttoHandlerModel, token: str | None,
               say: Callable[[str], None] | None = None) -> OttoForwarder:
        """A running forwarder fed by `server`'s log relay and pod watch, its counts added to
        each build's result. Call from the server's event loop; `aclose` ends it."""
        fwd = cls(settings, token, server.settings.namespace, say or server.say)
        server.logrelay.line_observers.append(fwd.on_line)
        server.pod_observers.append(fwd.on_pod)
        server.build_notes.append(fwd.build_result)
        fwd.start()
        return fwd

    def start(self) -> None:
        self._channel = self._open()
        self._tasks = [asyncio.create_task(self._send_lines(), name="otto-lines"),
                       asyncio.create_task(self._send_statuses(), name="otto-statuses")]

    def _open(self) -> Any:
        s = self.settings
        options = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
        if s.plaintext:
            return aio.insecure_channel(s.address, options=options)
        ca = None
        if s.ca_file:
            try:
                ca = Path(s.ca_file).read_bytes()
            except OSError as e:
                raise ConfigError(f"otto_handler.ca_file: cannot read {s.ca_file}: "
                                  f"{e.strerror or e}") from None
        return aio.secure_channel(s.address, grpc.ssl_channel_credentials(ca), options=options)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        left = len(self.lines)
        if left:
            self.say(f"otto_handler: stopped with {left} log line(s) not forwarded")

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    # ------------------------------------------------------------ hooks (never block)

    def on_line(self, line: LogLine) -> None:
        """A line the relay took: queued with the next sequence number, or counted as
        overflow (its number skipped) when the queue is full."""
        self.sequence += 1
        build = line.build_id
        if len(self.lines) >= self.settings.queue_limit:
            self.counts.setdefault(build, Counts()).overflow += 1
            self.totals["overflow"] += 1
            if not self._overflowing:
                self._overflowing = True
                self.say(f"otto_handler: {self.settings.address} is behind; its queue of "
                         f"{self.settings.queue_limit} lines is full: lines are not forwarded "
                         "(counted as overflow in each build's result)")
            return
        if self._overflowing:
            self._overflowing = False
            self.say(f"otto_handler: forwarding again; {self.totals['overflow']} line(s) "
                     "overflowed so far")
        self.counts.setdefault(build, Counts())
        self.lines.append(_Line(self.sequence, log_entry(line, self.sequence, self.epoch,
                                                         self.namespace), build))
        self._wake_lines.set()

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """A pod watch event: the worker's new states, queued for NotifyWorkerStatus."""
        name = str(pod["metadata"]["name"])
        told = self._told.get(name, ())
        new = transitions(told, kind, pod)
        if new:
            now = self.clock()
            for state in new:
                if len(self.statuses) >= STATUS_LIMIT:
                    self.totals["status_overflow"] += 1
                    continue
                self.statuses.append(notification(pod, state, now))
            self._told[name] = (*told, *new)
            self._wake_statuses.set()
        if kind == "DELETED":
            self._told.pop(name, None)

    async def build_result(self, build_id: str) -> dict[str, str]:
        """The forwarding counts of a build whose lines are all relayed (its result's fields),
        once its lines are answered or `report_wait_seconds` have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.report_wait_seconds
        while self._unsettled(build_id) and loop.time() < deadline:
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(),
                                       max(0.0, deadline - loop.time()))
        unsettled = self._unsettled(build_id)
        counts = self.counts.pop(build_id, Counts())
        lost = counts.dropped + counts.overflow + counts.gave_up
        if lost or unsettled:
            self.say(f"build {build_id}: otto_handler: {counts.forwarded} line(s) forwarded, "
                     f"{counts.dropped} dropped by it, {counts.overflow} overflowed, "
                     f"{counts.gave_up} given up, {unsettled} still waiting")
        return counts.fields(unsettled)

    def _unsettled(self, build_id: str) -> int:
        return sum(1 for item in self.lines if item.build == build_id)

    # ------------------------------------------------------------ senders

    def _settle(self, item: _Line, outcome: str) -> None:
        self.lines.popleft()
        self.acked = item.sequence
        counts = self.counts.setdefault(item.build, Counts())
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        self.totals[outcome] += 1
        self._settled.set()

    async def _send_lines(self) -> None:
        backoff = 0.2
        while True:
            while not self.lines:
                self._wake_lines.clear()
                await self._wake_lines.wait()
            try:
                await self._stream()
                backoff = 0.2
            except Exception as e:    # any break (RpcError, a write on a call that ended …)
                if not isinstance(e, grpc.RpcError | aio.UsageError | TimeoutError |
                                  ConnectionError | asyncio.InvalidStateError):
                    log.warning("otto_handler: ForwardWorkerLogs: %r", e)
                if self.connected:
                    self.say(f"otto_handler: ForwardWorkerLogs to {self.settings.address}: "
                             f"{_problem(e)}; reconnecting, from line {self.acked + 1}")
                self.connected = False
                self.totals["reconnects"] += 1
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.settings.max_backoff_seconds)

    async def _stream(self) -> None:
        """One ForwardWorkerLogs stream, line by line, until it breaks."""
        stub = otto_grpc.OttoHandlerLogServiceStub(self._channel)  # type: ignore[no-untyped-call]
        call = stub.ForwardWorkerLogs(metadata=self._metadata)
        timeout = self.settings.call_timeout_seconds
        retries = 0
        try:
            while True:
                while not self.lines:
                    self._wake_lines.clear()
                    await self._wake_lines.wait()
                item = self.lines[0]
                async with asyncio.timeout(timeout):     # a write and its answer
                    await call.write(item.entry)
                    answer = await call.read()
                if answer is aio.EOF:
                    raise ConnectionError("the CI server ended the stream")
                if not self.connected:
                    self.connected = True
                    self.say(f"otto_handler: forwarding logs to {self.settings.address}")
                pause = answer.throttle_ms / 1000 if answer.throttle_ms > 0 else 0.0
                if answer.status == otto.LogForwardResponse.RETRY:
                    retries += 1
                    self.totals["retried"] += 1
                    if retries > MAX_RETRIES:
                        self.say(f"otto_handler: line {item.sequence} given up after "
                                 f"{MAX_RETRIES} RETRY answers")
                        self._settle(item, "gave_up")
                        retries = 0
                    else:
                        pause = max(pause, min(2.0, 0.05 * 2 ** min(retries, 6)))
                elif answer.status == otto.LogForwardResponse.DROP:
                    self._settle(item, "dropped")
                    retries = 0
                else:
                    self._settle(item, "forwarded")
                    retries = 0
                if pause:
                    await asyncio.sleep(pause)
        finally:
            call.cancel()

    async def _send_statuses(self) -> None:
        backoff = 0.2
        while True:
            while not self.statuses:
                self._wake_statuses.clear()
                await self._wake_statuses.wait()
            stub = otto_grpc.OttoHandlerLogServiceStub(self._channel)  # type: ignore[no-untyped-call]
            try:
                await stub.NotifyWorkerStatus(self.statuses[0], metadata=self._metadata,
                                              timeout=self.settings.call_timeout_seconds)
            except Exception as e:    # RpcError, a timeout …: the same one again, later
                self.totals["status_retries"] += 1
                if backoff == 0.2:
                    self.say(f"otto_handler: NotifyWorkerStatus to {self.settings.address}: "
                             f"{_problem(e)}; again with backoff")
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.settings.max_backoff_seconds)
                continue
            self.statuses.popleft()
            self.totals["statuses"] += 1
            backoff = 0.2


def _problem(e: BaseException) -> str:
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else ""
        return f"{getattr(code, 'name', code)}: {details}"
    return str(e) or type(e).__name__
