"""Live worker logs: pods/log?follow relayed into tagged, time-ordered, resumable journals.

One upstream follow per pod, whoever asks: its lines go into the pod's `Journal[LogLine]`,
tagged from the pod's labels and annotations (task, build, stage, index, attempt). Readers —
`task_lines` for a gRPC client, `collect_build` for a pipeline build — read journals, never the
API server, so a hundred readers of one pod cost one follow.

A pod is followed while it runs and someone wants it: the relay was built with `follow_all`
(the worker server: every worker's log is relayed), a build collects it, or a reader reads it
(reference-counted: the last reader to go cancels the follow). The end comes from the watch, not
from the stream (KWOK's never ends): on the pod's terminal phase or its deletion the follow is
cancelled, a last non-follow read catches the lines written just before the end (deduplicated
against what was relayed: same timestamp, same text), and the journal is closed. The server
awaits `drained(pod)` before it deletes a pod, so no line is lost to the delete. A follow that
fails (the log not served yet, a dropped connection, a read timeout on a quiet pod) is opened
again from the second of the last line relayed, deduplicated the same way.

stdout and stderr: every line is tagged stream "combined". The pods/log API merges the two
unless the API server has the PodLogsQuerySplitStreams feature gate (KEP-3288, alpha in 1.32 to
1.34, off by default) and the kubelet honours the `stream` parameter. The test bed's 1.34 API
server runs without the gate, and KWOK v0.7.0's kubelet endpoint drops the parameter (its
PodLogOptions conversion knows no `stream` field, and it hands one writer as both stdout and
stderr), so there is no way to tell the two apart here; asking anyway would be silently ignored
— or refused with 422 by a server that validates the field with the gate off.

Ordering (TimeMerge): lines of several pods are released in timestamp order. A line is held
until every live source has passed its time or for `window` seconds (0.25 by default),
whichever comes first. Guarantee: output is in timestamp order unless a line reaches the merge
more than `window` after a line with a later timestamp was released — such a late line is
released at once, out of order, never dropped. Each pod's own lines are always in its order.

Memory is bounded: a pod journal keeps `limit` lines (a late reader is told how many it missed)
and is dropped `keep_seconds` after its pod is over and no reader holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    BUILD_LABEL,
    CONTAINER,
    INDEX_LABEL,
    STAGE_LABEL,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
)
from devtrip_scale.workers.journal import Journal, Missed
from devtrip_scale.workers.progress import LogLine

log = logging.getLogger("devscale.workers")
T = TypeVar("T")

TERMINAL = ("Succeeded", "Failed")
STREAM = "combined"          # see the module docstring: pods/log cannot split them here


# ------------------------------------------------------------------ pure parts

def parse_line(raw: str) -> tuple[float, str]:
    """A timestamped log line (`2026-12-02T13:04:05.123456789Z text`, RFC 3339 with 0 to 9
    fractional digits and Z or an offset) as (Unix seconds, text). ValueError when it does not
    start with such a timestamp."""
    stamp, sep, text = raw.partition(" ")
    if not sep and not stamp:
        raise ValueError("an empty line has no timestamp")
    return parse_time(stamp), text


def parse_time(stamp: str) -> float:
    """An RFC 3339 time with up to nanoseconds as Unix seconds (float: ~0.2 µs resolution)."""
    if len(stamp) < 20 or stamp[10] not in "Tt":
        raise ValueError(f"not an RFC 3339 timestamp: {stamp[:40]!r}")
    head, rest = stamp[:19], stamp[19:]
    fraction = ""
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        fraction, rest = rest[1:digits], rest[digits:]
        if not fraction or len(fraction) > 9:
            raise ValueError(f"bad fractional seconds in {stamp[:40]!r}")
    zone = "+00:00" if rest in ("Z", "z") else rest
    try:
        whole = datetime.fromisoformat(head + zone)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {stamp[:40]!r}") from None
    if whole.tzinfo is None:
        raise ValueError(f"no time zone in {stamp[:40]!r}")
    return whole.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _second(t: float) -> float:
    return float(math.floor(t)) if math.isfinite(t) else t


def since_stamp(t: float) -> str:
    """The whole second at or before `t` as pods/log's sinceTime takes it (RFC 3339, UTC)."""
    return datetime.fromtimestamp(math.floor(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(order=True)
class _Held(Generic[T]):
    time: float
    order: int
    arrived: float = field(compare=False)
    item: T = field(compare=False)
    released: bool = field(default=False, compare=False)


class TimeMerge(Generic[T]):
    """Items from many sources out in timestamp order (pure: the caller passes the clock).

    Each source pushes its items in its own time order. An item is released once every live
    source has passed its time (its latest item is no earlier) or once it has been held
    `window` seconds, whichever comes first; releasing an item releases every earlier one with
    it. A source that is closed no longer holds anything back."""

    def __init__(self, window: float = 0.25) -> None:
        if window < 0:
            raise ValueError("window must not be negative")
        self.window = window
        self._heap: list[_Held[T]] = []
        self._arrivals: deque[_Held[T]] = deque()
        self._marks: dict[str, float] = {}       # live source → the time it has passed
        self._count = itertools.count()
        self.last = -math.inf                    # the time of the newest item released

    def open(self, source: str) -> None:
        """A live source that has not pushed anything yet: it holds everything back (for at
        most `window`) until it does."""
        self._marks.setdefault(source, -math.inf)

    def close(self, source: str) -> None:
        self._marks.pop(source, None)

    def push(self, source: str, t: float, item: T, now: float) -> None:
        held = _Held(t, next(self._count), now, item)
        heapq.heappush(self._heap, held)
        self._arrivals.append(held)
        self._marks[source] = max(self._marks.get(source, -math.inf), t)

    def __len__(self) -> int:
        return len(self._heap)

    def release(self, now: float) -> list[T]:
        """The items due at `now`, in timestamp order."""
        line = min(self._marks.values(), default=math.inf)
        while self._arrivals and (self._arrivals[0].released
                                  or self._arrivals[0].arrived + self.window <= now):
            held = self._arrivals.popleft()
            if not held.released:
                line = max(line, held.time)
        return self._pop(line)

    def flush(self) -> list[T]:
        """Everything held, in timestamp order."""
        return self._pop(math.inf)

    def due(self, now: float) -> float | None:
        """Seconds until the next item falls due by its window; None when nothing is held."""
        while self._arrivals and self._arrivals[0].released:
            self._arrivals.popleft()
        if not self._arrivals:
            return None
        return max(0.0, self._arrivals[0].arrived + self.window - now)

    def _pop(self, line: float) -> list[T]:
        out: list[T] = []
        while self._heap and self._heap[0].time <= line:
            held = heapq.heappop(self._heap)
            held.released = True
            self.last = max(self.last, held.time)
            out.append(held.item)
        return out


def tag(pod: dict[str, Any], t: float, text: str, container: str = CONTAINER) -> LogLine:
    """A line of `pod` tagged with where it came from (its labels and annotations)."""
    meta = pod.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}

    def number(value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0

    return LogLine(time=t, text=text, pod=str(meta.get("name", "")),
                   task_id=str(notes.get(TASK_ID_ANNOTATION, "")),
                   build_id=str(notes.get(BUILD_LABEL) or labels.get(BUILD_LABEL) or ""),
                   stage=str(notes.get(STAGE_LABEL) or labels.get(STAGE_LABEL) or ""),
                   index=number(labels.get(INDEX_LABEL)),
                   attempt=number(labels.get(ATTEMPT_LABEL)),
                   container=container, stream=STREAM)


def phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


# ------------------------------------------------------------------ the relay

@dataclass(eq=False)
class _PodLog:
    """What the relay holds for one pod."""

    name: str
    pod: dict[str, Any]
    journal: Journal[LogLine]
    gone: bool = False                     # deleted (or never seen again after a relist)
    readers: int = 0
    pump: asyncio.Task[None] | None = None
    drain: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)   # drained, journal closed
    followed: bool = False                 # a follow was ever started
    last: float = -math.inf                # the time of the newest line relayed
    recent: set[tuple[float, str]] = field(default_factory=set)  # lines of last's second
    builds: set[str] = field(default_factory=set)
    drop: asyncio.TimerHandle | None = None
    problem: str | None = None
    unread: str | None = None              # why its last read gave nothing (the API's answer)

    @property
    def over(self) -> bool:
        return self.gone or phase(self.pod) in TERMINAL

    def labels(self) -> dict[str, str]:
        return dict((self.pod.get("metadata") or {}).get("labels") or {})


@dataclass(eq=False)
class _Build:
    journal: Journal[LogLine]
    merge: TimeMerge[LogLine]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    flusher: asyncio.Task[None] | None = None


class LogRelay:
    """Follows worker pods' logs into per-pod journals; see the module docstring."""

    def __init__(self, kube: AsyncKube, *, container: str = CONTAINER, limit: int = 10_000,
                 window: float = 0.25, keep_seconds: float = 300.0, linger: float = 5.0,
                 follow_all: bool = False, retry_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.container = container
        self.limit = limit
        self.window = window
        self.keep_seconds = keep_seconds
        self.linger = linger                 # task_lines: how long to wait for a next attempt
        self.follow_all = follow_all
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.logs: dict[str, _PodLog] = {}
        self.readers = 0                     # task_lines streams open now
        self.follows = 0                     # upstream follows open now
        self.problems: list[str] = []
        self._builds: dict[str, _Build] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()      # replaced on every pod change (readers wait on it)
        # told every line as it is relayed (once), synchronously: must not block
        self.line_observers: list[Callable[[LogLine], None]] = []

    @property
    def tasks(self) -> int:
        """Background tasks of the relay alive now (follows, drains, build flushers)."""
        return sum(1 for t in self._tasks if not t.done())

    # ------------------------------------------------------------ the watch's side

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Every change the pod watch sees (synchronous: starts or stops work, never waits)."""
        name = pod["metadata"]["name"]
        pl = self.logs.get(name)
        if pl is None:
            if kind == "DELETED":
                return
            pl = self.logs[name] = _PodLog(name, pod, Journal(self.limit))
        pl.pod = pod
        if kind == "DELETED":
            pl.gone = True
        build = str((pod["metadata"].get("labels") or {}).get(BUILD_LABEL, ""))
        if build in self._builds and build not in pl.builds:
            self._join_build(build, pl)
        self._update(pl)
        self._notify()

    async def drained(self, pod: str) -> None:
        """Returns once the pod's log is relayed to the end (its journal closed), or at once
        when nobody followed it."""
        pl = self.logs.get(pod)
        if pl is None:
            return
        if pl.drain is None and pl.over and (pl.followed or self._wanted(pl)):
            self._update(pl)
        if pl.drain is not None:
            await asyncio.shield(pl.done.wait())

    async def aclose(self) -> None:
        """Cancel every follow, drain and flusher (the server's shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pl in self.logs.values():
            if pl.drop is not None:
                pl.drop.cancel()

    # ------------------------------------------------------------ following

    def _wanted(self, pl: _PodLog) -> bool:
        # follow_all: every stream task's worker; a build's pods are followed by the replica
        # that collects the build (its owner), or for a reader
        return (self.follow_all and BUILD_LABEL not in pl.labels()) or pl.readers > 0 or \
            bool(pl.builds)

    def _update(self, pl: _PodLog) -> None:
        """Start or stop what a pod's state and its wanters call for."""
        if pl.done.is_set() or pl.drain is not None:
            return
        if pl.over:
            if pl.followed or self._wanted(pl):
                pl.drain = self._spawn(self._drain(pl), f"log-drain-{pl.name}")
            elif pl.gone:          # nobody wanted it and it can no longer be read
                self._close(pl)
            return
        if phase(pl.pod) != "Running" or pl.pod["metadata"].get("deletionTimestamp"):
            return                 # pods/log of a Pending pod is refused
        if self._wanted(pl) and pl.pump is None:
            pl.followed = True
            pl.pump = self._spawn(self._pump(pl), f"log-follow-{pl.name}")
        elif not self._wanted(pl) and pl.pump is not None:
            pl.pump.cancel()
            pl.pump = None

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(self, pl: _PodLog) -> None:
        """Follow one pod's log into its journal until cancelled (by a drain or by its last
        reader leaving); a failed follow is opened again from the last line's second."""
        self.follows += 1
        backoff = Backoff(0.1, self.retry_seconds)
        try:
            while True:
                since = since_stamp(pl.last) if pl.last > -math.inf else None
                try:
                    async for raw in self.kube.follow_log(pl.name, self.container,
                                                          since_time=since):
                        if self._take(pl, raw):
                            backoff.reset()   # new lines: a stream that ends is reopened soon
                except KubeNotFound:
                    return                 # gone: the watch will say so
                except KubeForbidden as e:
                    pl.problem = str(e)
                    self.problems.append(str(e))
                    log.warning("log of %s: %s", pl.name, e)
                    return
                except KubeError:
                    pass                   # not served yet, dropped, quiet too long: again
                await asyncio.sleep(backoff.next())
        finally:
            self.follows -= 1

    async def _drain(self, pl: _PodLog) -> None:
        """The pod is over: stop following, read what the follow had not delivered yet, close
        the journal."""
        try:
            if pl.pump is not None:
                pl.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pl.pump
                pl.pump = None
            if not pl.problem:
                await self._catch_up(pl)
        finally:
            self._close(pl)

    async def _catch_up(self, pl: _PodLog) -> None:
        since = since_stamp(pl.last) if pl.last > -math.inf else None
        for attempt in range(4):
            try:
                for raw in await self.kube.read_log_lines(pl.name, self.container,
                                                          since_time=since):
                    self._take(pl, raw)
                return
            except KubeNotFound:
                return                     # the pod is gone: what was relayed is all there is
            except KubeForbidden as e:
                self.problems.append(str(e))
                return
            except KubeError as e:
                # an answer (400: the container never wrote a log) is final; a dropped
                # connection is tried again, briefly: the server waits for this read
                if e.status is not None or attempt == 3 or pl.gone:
                    log.info("last read of the log of %s: %s", pl.name, e)
                    pl.unread = str(e).rpartition(" failed: ")[2] or str(e)
                    return
                await asyncio.sleep(0.2 * (attempt + 1))

    def _take(self, pl: _PodLog, raw: str) -> bool:
        """One raw line of a pod's log into its journal, unless it was relayed already; whether
        it was new."""
        if pl.journal.closed:
            return False
        try:
            t, text = parse_line(raw)
        except ValueError:
            t, text = (pl.last if pl.last > -math.inf else time.time()), raw
        key = (t, text)
        second = _second(pl.last)
        if t < second or key in pl.recent:
            return False                   # from a re-follow or the last read: relayed before
        if _second(t) > second:            # only the newest second can come again
            pl.recent = {k for k in pl.recent if k[0] >= _second(t)}
        pl.recent.add(key)
        pl.last = max(pl.last, t)
        line = tag(pl.pod, t, text, self.container)
        pl.journal.append(line)
        for observe in self.line_observers:
            observe(line)
        for build in pl.builds:
            b = self._builds.get(build)
            if b is not None:
                b.merge.push(pl.name, t, line, self.clock())
                b.wake.set()
        return True

    def _close(self, pl: _PodLog) -> None:
        pl.journal.close()
        pl.done.set()
        for build in pl.builds:
            b = self._builds.get(build)
            if b is not None:
                b.merge.close(pl.name)
                b.wake.set()
        self._schedule_drop(pl)
        self._notify()

    def _schedule_drop(self, pl: _PodLog) -> None:
        if pl.drop is not None:
            pl.drop.cancel()
        pl.drop = asyncio.get_running_loop().call_later(self.keep_seconds, self._drop, pl)

    def _drop(self, pl: _PodLog) -> None:
        pl.drop = None
        if pl.readers > 0 or any(b in self._builds for b in pl.builds):
            self._schedule_drop(pl)
        elif self.logs.get(pl.name) is pl:
            del self.logs[pl.name]

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------ builds

    def collect_build(self, build_id: str, journal: Journal[LogLine]) -> None:
        """Follow every pod of the build (label devscale.devtrip.io/build) for as long as it
        lives, and put its lines into `journal` in time order across the pods."""
        if build_id in self._builds:
            raise ValueError(f"build {build_id} is collected already")
        b = self._builds[build_id] = _Build(journal, TimeMerge(self.window))
        b.flusher = self._spawn(self._flush_build(b), f"log-build-{build_id}")
        for pl in list(self.logs.values()):
            if pl.labels().get(BUILD_LABEL) == build_id:
                self._join_build(build_id, pl)
                self._update(pl)

    async def finish_build(self, build_id: str,
                           before_close: Callable[[], None] | None = None) -> None:
        """Wait until every pod of the build is drained, then flush and close its journal
        (`before_close` runs just before: what readers should know when the journal ends)."""
        b = self._builds.get(build_id)
        if b is None:
            return
        try:
            while True:
                waiting = [pl for pl in self.logs.values()
                           if build_id in pl.builds and not pl.done.is_set()]
                if not waiting:
                    break
                await asyncio.gather(*(pl.done.wait() for pl in waiting))
        finally:
            del self._builds[build_id]
            if b.flusher is not None:
                b.flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await b.flusher
            for line in b.merge.flush():
                b.journal.append(line)
            if before_close is not None:
                before_close()
            b.journal.close()
            for pl in self.logs.values():
                pl.builds.discard(build_id)
                self._update(pl)

    def silent(self, build_id: str) -> tuple[str, ...]:
        """The build's pods that relayed no line, each with the reason the API gave when its
        log was read (`pod: HTTP 400 no logs found for container "worker"`): kept with the
        build, so that an empty log is said, not just empty. Pods are held `keep_seconds`
        after they end: call this when the build's logs are finished."""
        return tuple(f"{pl.name}: {pl.unread or pl.problem or 'it wrote no line'}"
                     for pl in self.logs.values()
                     if pl.labels().get(BUILD_LABEL) == build_id and pl.last == -math.inf)

    def drop_build(self, build_id: str) -> None:
        """Stop collecting a build without waiting for its pods (its owner hands it over):
        the lines held for ordering go into its journal, which is left open."""
        b = self._builds.pop(build_id, None)
        if b is None:
            return
        if b.flusher is not None:
            b.flusher.cancel()
        for line in b.merge.flush():
            b.journal.append(line)
        for pl in self.logs.values():
            pl.builds.discard(build_id)
            self._update(pl)

    def _join_build(self, build_id: str, pl: _PodLog) -> None:
        b = self._builds[build_id]
        pl.builds.add(build_id)
        now = self.clock()
        if not pl.done.is_set():
            b.merge.open(pl.name)
        for _, line in pl.journal.items():
            b.merge.push(pl.name, line.time, line, now)
        if pl.done.is_set():
            b.merge.close(pl.name)
        b.wake.set()

    async def _flush_build(self, b: _Build) -> None:
        while True:
            for line in b.merge.release(self.clock()):
                b.journal.append(line)
            wait = b.merge.due(self.clock())
            b.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(b.wake.wait(), wait)

    # ------------------------------------------------------------ readers

    def _task_pods(self, task_key: str, pod: str | None) -> list[_PodLog]:
        return [pl for name, pl in self.logs.items()
                if pl.labels().get(TASK_LABEL) == task_key and (pod is None or name == pod)]

    async def task_lines(self, task_key: str, pod: str | None = None, follow: bool = False
                         ) -> AsyncGenerator[LogLine | Missed, None]:
        """The log lines of a task's pods (or of its one pod `pod`), merged by time. Without
        `follow`: what there is now. With it: live, including later attempts that appear while
        following, until every pod seen is over and drained and no new one came for `linger`
        seconds (a task with no pod yet is waited for). A `Missed` tells of lines trimmed from
        a pod's journal before this reader got them.

        Closing or cancelling the generator (a client gone) ends everything it started: its
        reader tasks, and the follows that were kept only for it."""
        self.readers += 1
        try:
            if follow:
                async for item in self._follow_task(task_key, pod):
                    yield item
            else:
                for item in await self._task_now(task_key, pod):
                    yield item
        finally:
            self.readers -= 1

    async def _task_now(self, task_key: str, pod: str | None) -> list[LogLine | Missed]:
        out: list[LogLine | Missed] = []
        lines: list[LogLine] = []
        for pl in self._task_pods(task_key, pod):
            if pl.followed or pl.done.is_set():
                for item in [x async for x in pl.journal.read(0, follow=False)]:
                    if isinstance(item, Missed):
                        out.append(item)
                    else:
                        lines.append(item[1])
            elif not pl.gone and phase(pl.pod) != "Pending":   # never followed: read it now
                try:
                    raws = await self.kube.read_log_lines(pl.name, self.container)
                except KubeNotFound:
                    continue
                except KubeForbidden:
                    raise
                except KubeError:
                    continue       # no log yet
                for raw in raws:
                    with contextlib.suppress(ValueError):
                        lines.append(tag(pl.pod, *parse_line(raw), self.container))
        lines.sort(key=lambda line: line.time)
        return [*out, *lines]

    async def _follow_task(self, task_key: str, pod: str | None
                           ) -> AsyncGenerator[LogLine | Missed, None]:
        merge: TimeMerge[LogLine | Missed] = TimeMerge(self.window)
        wake = asyncio.Event()
        readers: dict[str, asyncio.Task[None]] = {}
        held: list[_PodLog] = []
        quiet_since: float | None = None

        async def read(pl: _PodLog) -> None:
            try:
                async for item in pl.journal.read(0, follow=True):
                    if isinstance(item, Missed):
                        merge.push(pl.name, merge.last, item, self.clock())
                    else:
                        merge.push(pl.name, item[1].time, item[1], self.clock())
                    wake.set()
            finally:
                merge.close(pl.name)
                wake.set()

        try:
            while True:
                changed = self._changed
                wake.clear()
                for pl in self._task_pods(task_key, pod):
                    if pl.name not in readers:
                        pl.readers += 1
                        held.append(pl)
                        merge.open(pl.name)
                        readers[pl.name] = asyncio.get_running_loop().create_task(
                            read(pl), name=f"log-reader-{pl.name}")
                        self._update(pl)
                        if pl.drop is not None:
                            pl.drop.cancel()
                            pl.drop = None
                for item in merge.release(self.clock()):
                    yield item
                active = [t for t in readers.values() if not t.done()]
                if readers and not active and not len(merge):
                    if pod is not None:
                        return
                    quiet_since = quiet_since if quiet_since is not None else self.clock()
                    if self.clock() - quiet_since >= self.linger:
                        return
                else:
                    quiet_since = None
                timeouts = [merge.due(self.clock())]
                if quiet_since is not None:
                    timeouts.append(max(0.0, quiet_since + self.linger - self.clock()))
                timeout = min((t for t in timeouts if t is not None), default=None)
                waits = [asyncio.ensure_future(wake.wait()),
                         asyncio.ensure_future(changed.wait())]
                try:
                    await asyncio.wait(waits, timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            for task in readers.values():
                task.cancel()
            await asyncio.gather(*readers.values(), return_exceptions=True)
            for pl in held:
                pl.readers -= 1
                self._update(pl)
                if pl.done.is_set() and pl.drop is None:
                    self._schedule_drop(pl)
