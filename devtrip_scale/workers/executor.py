"""Pipeline builds on the worker server: each stage a task of worker pods, started the moment
its own needs are done, its progress told in a sequence-numbered journal.

A stage runs through the same machinery as a stream request (WorkerServer.start_task: the
stage's pod template, the shared cap, the rate-limited API, the one pod watch, logs kept before
pods are deleted, its own retry policy with backoff). The executor adds what only a pipeline
has: the DAG (pipeline.Plan), the stage timeout (KWOK, like some kubelets, does not enforce
activeDeadlineSeconds, so the executor does), fail-fast, cancel, and the build's progress.

Builds live in this server process: a restart loses running builds' progress and the builds
kept for `pipeline status` (their stage pods are still finished and deleted by whichever server
sees them end). Finished builds are kept at most `keep_builds` and `keep_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from redis.exceptions import RedisError

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import ConfigError, DevscaleError
from devtrip_scale.workers.journal import Journal
from devtrip_scale.workers.pipeline import Pipeline, Plan, RetryOn, StageModel, retry_delay
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
    shown_attempt,
)
from devtrip_scale.workers.server import Cancelled, Stopping, WorkerServer
from devtrip_scale.workers.store import Spec
from devtrip_scale.workers.tasks import Outcome, PodResult, TaskResult, pod_name, task_key

log = logging.getLogger("devscale.workers")
BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
CHECK_SECONDS = 30.0        # how often a waiting stage also looks in Redis for its result
WAITING_SECONDS = 5.0       # a stage's pod not running after this long: its phase and reason said
START_TRIES = 8             # a stage's pods not created after this many tries: the stage fails


class UnknownBuild(DevscaleError):
    """No build of that id in this server (never started, or no longer kept)."""


class NotAccepting(DevscaleError):
    """The server is shutting down and starts no builds."""


@dataclass(frozen=True)
class BuildStatus:
    id: str
    pipeline: str
    state: BuildState
    stages: tuple[StageStatus, ...]        # in file order
    started: float                         # Unix seconds
    finished: float | None
    last_sequence: int                     # of the progress journal
    message: str = ""


def stage_task_id(build_id: str, stage: str) -> str:
    """The task id of a build's stage (task_key makes it a DNS-safe key)."""
    return f"{build_id}/{stage}"


class _Listener:
    """What the server tells of one stage's workers, into the build's progress."""

    def __init__(self, build: Build, stage: str, done: asyncio.Future[TaskResult]) -> None:
        self.build, self.stage, self.done = build, stage, done

    def worker_running(self, index: int, attempt: int, pod: str) -> None:
        run = self.build._runs[self.stage]
        if run.state.done:
            return
        self.build._set(self.stage, state=StageState.RUNNING,
                        attempt=max(run.attempt, attempt + 1))
        self.build._emit(self.stage, attempt=attempt + 1, worker_index=index, pod=pod,
                         message=f"worker {index} running (attempt {attempt})")   # 0-based, as pods

    def worker_ended(self, index: int, attempt: int, pod: str, outcome: Outcome,
                     exit_code: int | None) -> None:
        run = self.build._runs[self.stage]
        if outcome is Outcome.SUCCEEDED:
            self.build._set(self.stage, workers_succeeded=run.workers_succeeded + 1)
        code = "" if exit_code is None else f", exit code {exit_code}"
        self.build._emit(self.stage, attempt=attempt + 1, worker_index=index, pod=pod,
                         message=f"worker {index} {outcome.value}{code}")

    def worker_retrying(self, index: int, attempt: int, delay: float, reason: str) -> None:
        run = self.build._runs[self.stage]
        if run.state.done:
            return
        message = f"{reason}; attempt {attempt} in {delay:g}s"   # counted from 0, as pods
        self.build._set(self.stage, state=StageState.RETRYING,
                        attempt=max(run.attempt, attempt + 1), message=message)
        self.build._emit(self.stage, attempt=attempt + 1, worker_index=index, message=message)

    def task_done(self, result: TaskResult) -> None:
        self.build._set(self.stage, workers_succeeded=result.succeeded)
        if not self.done.done():
            self.done.set_result(result)


class Build:
    """One run of a pipeline. `progress` gets an event per change (the first and the last
    carry every stage); `logs` gets the lines of all its pods in time order from the server's
    log relay; both are closed when it ends (the logs once every pod's log is relayed)."""

    def __init__(self, build_id: str, pipeline: Pipeline, server: WorkerServer) -> None:
        self.id = build_id
        self.pipeline = pipeline
        self.progress: Journal[ProgressEvent] = Journal()
        self.logs: Journal[LogLine] = Journal()
        self.plan = Plan(pipeline)
        self.state = BuildState.RUNNING
        self.started = time.time()
        self.finished: float | None = None
        self.message = ""
        self._server = server
        self._runs = {s.name: StageStatus(s.name, StageState.WAITING, s.needs, 0, s.workers)
                      for s in pipeline.stages}
        self._tasks: dict[str, asyncio.Task[tuple[bool, str]]] = {}
        self._cancel = asyncio.Event()
        self._why_cancelled = ""
        self._ended = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None
        self.silent_pods: tuple[str, ...] = ()   # pods with no log line, and why (logs end)

    # ---------------------------------------------------------------- reading

    def status(self) -> BuildStatus:
        return BuildStatus(self.id, self.pipeline.name, self.state,
                           tuple(self._runs[s.name] for s in self.pipeline.stages),
                           self.started, self.finished, self.progress.last, self.message)

    async def wait(self) -> BuildStatus:
        """The status once the build has ended."""
        await self._ended.wait()
        return self.status()

    @property
    def done(self) -> bool:
        return self._ended.is_set()

    def cancel(self, why: str = "the build was cancelled") -> None:
        """Ask the build to stop: running stages cancelled, the rest skipped."""
        if not self._cancel.is_set():
            self._why_cancelled = why
            self._cancel.set()

    # ---------------------------------------------------------------- writing

    def _set(self, stage: str, **changes: object) -> StageStatus:
        run = self._runs[stage] = replace(self._runs[stage], **changes)  # type: ignore[arg-type]
        return run

    def _emit(self, stage: str = "", *, state: StageState | None = None, attempt: int = 0,
              worker_index: int = -1, pod: str = "", message: str = "",
              whole: bool = False) -> None:
        if self.progress.closed:
            return
        if stage and state is None:
            state = self._runs[stage].state
        self.progress.append(ProgressEvent(
            time.time(), self.id, self.state, stage, state, attempt, worker_index, pod, message,
            tuple(self._runs[s.name] for s in self.pipeline.stages) if whole else ()))

    def _stage_changed(self, stage: str, state: StageState, message: str = "") -> None:
        run = self._runs[stage]
        finished = time.time() if state.done and run.finished is None else run.finished
        self._set(stage, state=state, message=message, finished=finished)
        self._emit(stage, state=state, attempt=self._runs[stage].attempt, message=message)

    # ---------------------------------------------------------------- running

    async def run(self) -> None:
        self._emit(message=f"build {self.id} of pipeline {self.pipeline.name} started: "
                           f"{len(self.pipeline.stages)} stage(s)", whole=True)
        try:
            await self._loop()
        except asyncio.CancelledError:      # the server stopping past its grace period
            await self._stop_stages("the server stopped")
            self._skip_all("the server stopped")
            raise
        except Exception as e:              # a bug: the build ends failed, never hangs
            log.exception("build %s", self.id)
            await self._stop_stages(f"internal error: {e}")
            self._skip_all(f"internal error: {e}")
            self.message = f"internal error: {e}"
        finally:
            self._end()
            await self._close_logs()
            await self._report()
            self._ended.set()

    async def _close_logs(self, within: float = 30) -> None:
        """The build's log journal closes once every pod's log is relayed to its end (the
        relay flushes what it holds); a relay that cannot finish within `within` seconds is
        said and the journal closed anyway, so a build never hangs on its logs."""
        try:
            await asyncio.wait_for(self._server.logrelay.finish_build(
                self.id, before_close=self._note_silent_pods), within)
        except TimeoutError:
            self._server.say(f"build {self.id}: logs not drained within {within:g}s; closed")
        finally:
            if not self.logs.closed:
                self._note_silent_pods()
                self.logs.close()

    def _note_silent_pods(self) -> None:
        """Before the log journal closes: its pods that wrote nothing, and why (readers that
        got no line are told when the journal ends)."""
        self.silent_pods = self._server.logrelay.silent(self.id)

    async def _report(self) -> None:
        """The build's outcome, once, as a task's: an entry on the results stream (task_id =
        the build id, plus build_id, pipeline and stages), an Event, and the notifiers for a
        failure. Best effort: a failure is said, never raised."""
        server = self._server
        pods: list[PodResult] = []
        for run in self._runs.values():       # each stage's workers, numbered on
            for i in range(run.workers):
                ok = i < run.workers_succeeded
                pods.append(PodResult(len(pods), Outcome.SUCCEEDED if ok else {
                    StageState.FAILED: Outcome.FAILED}.get(run.state, Outcome.CANCELLED),
                    max(1, run.attempt)))
        outcome = {BuildState.SUCCEEDED: "succeeded",
                   BuildState.CANCELLED: "cancelled"}.get(self.state, "failed")
        seconds = None if self.finished is None else self.finished - self.started
        result = TaskResult(self.id, outcome, tuple(pods), seconds)
        stages = json.dumps({r.name: {"state": r.state.value,
                                      "attempt": shown_attempt(r.attempt),
                                      "message": r.message} for r in self._runs.values()},
                            separators=(",", ":"))
        first = self.pipeline.stages[0].name
        extra: dict[str, str] = {}
        for note in server.build_notes:       # e.g. the otto_handler forwarding counts
            try:
                extra.update(await note(self.id))
            except Exception as e:
                server.say(f"build {self.id}: a note on its result failed: {e}")
        try:
            await asyncio.wait_for(server.reporter.report(
                result, "", pod_name(stage_task_id(self.id, first), 0, 0),
                {**extra, "build_id": self.id, "pipeline": self.pipeline.name,
                 "stages": stages, "message": self.message}), 30)
        except (DevscaleError, RedisError, OSError, TimeoutError) as e:
            server.say(f"build {self.id}: its result could not be reported: {e}")
        for problem in server.reporter.problems:
            server.say(f"build {self.id}: {problem}")
        server.reporter.problems.clear()
        said = "" if self.message == self.state.value else f": {self.message}"
        server.say(f"build {self.id}: {self.state.value}{said}")   # "cancelled", said once

    async def _loop(self) -> None:
        while True:
            if self._cancel.is_set() and not self.plan.cancelled:
                self._skip_all(self._why_cancelled)
                await self._stop_stages(self._why_cancelled)
            for name in self.plan.ready():
                self._start(name)
            if self.plan.done or not self._tasks:
                return
            cancel = asyncio.ensure_future(self._cancel.wait())
            try:
                finished, _ = await asyncio.wait({*self._tasks.values(), cancel},
                                                 return_when=asyncio.FIRST_COMPLETED)
            finally:
                cancel.cancel()
            for name, task in list(self._tasks.items()):
                if task in finished:
                    del self._tasks[name]
                    await self._ended_stage(name, task)

    def _start(self, name: str) -> None:
        stage = self.pipeline.stage(name)
        self._set(name, started=time.time(), attempt=1)
        self._stage_changed(name, StageState.RUNNING,
                            f"started: {stage.workers} worker(s)")
        self._tasks[name] = asyncio.create_task(self._run_stage(stage),
                                                name=f"build-{self.id}-{name}")

    async def _ended_stage(self, name: str, task: asyncio.Task[tuple[bool, str]]) -> None:
        if task.cancelled():
            self.plan.cancel(name)
            self._stage_changed(name, StageState.CANCELLED, "cancelled")
            return
        error = task.exception()
        ok, why = (False, f"internal error: {error}") if error is not None else task.result()
        skipped = self.plan.finished(name, ok)
        self._stage_changed(name, StageState.SUCCEEDED if ok else StageState.FAILED, why)
        for other in skipped:
            cause = "fail-fast: " if other not in self.plan.dependants(name) else ""
            self._stage_changed(other, StageState.SKIPPED, f"{cause}skipped: stage {name} "
                                                          "failed")
        if not ok and self.pipeline.fail_fast:
            await self._stop_stages(f"fail-fast: stage {name} failed")

    async def _stop_stages(self, why: str) -> None:
        """Cancel the running stages (their pods deleted) and wait for them."""
        tasks = dict(self._tasks)
        self._tasks.clear()
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for name, task in tasks.items():
            if task.cancelled() or task.exception() is not None:
                self.plan.cancel(name)
                self._stage_changed(name, StageState.CANCELLED, f"cancelled: {why}")
            else:                          # it ended before it could be cancelled
                ok, message = task.result()
                self.plan.finished(name, ok)
                self._stage_changed(name, StageState.SUCCEEDED if ok else StageState.FAILED,
                                    message)

    def _skip_all(self, why: str) -> None:
        for name in self.plan.cancel_all():
            self._stage_changed(name, StageState.SKIPPED, f"skipped: {why}")

    def _end(self) -> None:
        """The final state, the last progress event, journals closed (once)."""
        if self.finished is not None:
            return
        for name, run in self._runs.items():     # never leave a stage looking alive
            if not run.state.done:
                self._set(name, state=StageState.CANCELLED, finished=time.time())
        self.state = self.plan.outcome() if self.plan.done else BuildState.FAILED
        if self.message.startswith("internal error"):
            self.state = BuildState.FAILED
        self.finished = time.time()
        failed = [r.name for r in self._runs.values() if r.state is StageState.FAILED]
        if not self.message:
            self.message = {BuildState.SUCCEEDED: "all stages succeeded",
                            BuildState.CANCELLED: "cancelled"}.get(
                self.state, f"failed: stage(s) {', '.join(failed)} failed" if failed
                else "failed")
        self._emit(message=f"build {self.state.value}: {self.message} "
                           f"({self.finished - self.started:.1f}s)", whole=True)
        self.progress.close()

    async def _run_stage(self, stage: StageModel) -> tuple[bool, str]:
        """One stage to its end: (succeeded, why). Cancelling it cancels its task's pods."""
        server = self._server
        task_id = stage_task_id(self.id, stage.name)
        done: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        spec = Spec(task_id, stage.workers, "", (), self.id, stage.name,
                    stage.template().model_dump_json(), stage.retry.model_dump_json())
        waiter: asyncio.Task[None] | None = None
        try:
            try:
                await self._start_task(spec, _Listener(self, stage.name, done))
            except (Cancelled, Stopping):
                return False, "cancelled before its pods were created"
            except (DevscaleError, RedisError, OSError) as e:
                return False, f"its pods could not be created: {e}"
            waiter = asyncio.create_task(self._say_waiting(stage.name, task_key(task_id)),
                                         name=f"build-{self.id}-{stage.name}-waiting")
            loop = asyncio.get_running_loop()
            timeouts = 0
            deadline = None if stage.timeout_seconds is None else \
                loop.time() + stage.timeout_seconds
            while True:
                tick = CHECK_SECONDS if deadline is None else \
                    max(0.0, min(CHECK_SECONDS, deadline - loop.time()))
                try:
                    result = await asyncio.wait_for(asyncio.shield(done), tick)
                    break
                except TimeoutError:
                    pass
                if deadline is None or loop.time() < deadline:
                    # reported without telling us (another server's recovery claimed it)?
                    reported = await server.task_result(task_id)
                    if reported is not None:
                        result = reported
                        break
                    continue
                why = f"timed out after {stage.timeout_seconds}s"
                delay = retry_delay(stage.retry, RetryOn.TIMEOUT, None, timeouts)
                if delay is None:
                    await server.cancel_task(task_id)
                    with contextlib.suppress(TimeoutError):   # its pods are gone either way
                        await asyncio.wait_for(asyncio.shield(done), CHECK_SECONDS)
                    return False, why
                timeouts += 1
                await server.retry_task(task_id, delay, why)
                deadline = loop.time() + (stage.timeout_seconds or 0) + delay
        except asyncio.CancelledError:
            cleanup = asyncio.ensure_future(server.cancel_task(task_id))
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(cleanup)
            raise
        finally:
            server.listeners.pop(task_key(task_id), None)
            if waiter is not None:
                waiter.cancel()
        return result.outcome == "succeeded", _why(result)

    async def _say_waiting(self, stage: str, key: str, every: float = 1.0) -> None:
        """Each of the stage's pods that is not running WAITING_SECONDS after it appeared:
        its phase and reason in the progress (`worker 0 waiting 5s: Pending: Unschedulable:
        …`), again whenever the reason changes. Read from the one pod watch's cache."""
        loop = asyncio.get_running_loop()
        first: dict[str, float] = {}
        said: dict[str, str] = {}
        while True:
            try:
                self._say_waiting_now(stage, key, loop.time(), first, said)
            except Exception:   # a bug here must not go unheard, nor stop the stage
                log.exception("build %s: stage %s: its pods' waiting reasons", self.id, stage)
                return
            await asyncio.sleep(every)

    def _say_waiting_now(self, stage: str, key: str, now: float, first: dict[str, float],
                         said: dict[str, str]) -> None:
        from devtrip_scale.workers import INDEX_LABEL, TASK_LABEL
        from devtrip_scale.workers.status import waiting

        for name, pod in list(self._server.watch.pods.items()):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if labels.get(TASK_LABEL) != key:
                continue
            since = first.setdefault(name, now)
            why = waiting(pod)
            if why is None or now - since < WAITING_SECONDS or said.get(name) == why:
                continue
            said[name] = why
            index = int(labels.get(INDEX_LABEL, 0))
            self._emit(stage, worker_index=index, pod=name,
                       message=f"worker {index} waiting {now - since:.0f}s: {why}")

    async def _start_task(self, spec: Spec, listener: _Listener) -> None:
        """server.start_task, again on a transient failure (bounded backoff)."""
        backoff = Backoff(0.5, 15.0)
        for attempt in range(START_TRIES):
            try:
                await self._server.start_task(spec, listener)
                return
            except (DevscaleError, RedisError, OSError) as e:
                if isinstance(e, ConfigError) or attempt == START_TRIES - 1:
                    raise
                self._emit(spec.stage, message=f"creating its pods: {e}; again in "
                                               f"{backoff.current:.1f}s")
                await asyncio.sleep(backoff.next())


def _why(result: TaskResult) -> str:
    n = len(result.pods)
    retries = sum(p.attempts - 1 for p in result.pods)
    tail = f", {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if result.outcome == "succeeded":
        return f"{n} worker(s) succeeded{tail}"
    if result.outcome == "cancelled":
        return f"cancelled{tail}"
    codes = sorted({p.exit_code for p in result.pods if p.exit_code not in (None, 0)},
                   key=lambda c: c or 0)
    bad = sorted({p.outcome.value for p in result.pods if p.outcome is not Outcome.SUCCEEDED})
    text = f"{result.failed} of {n} worker(s) {'/'.join(bad)}"
    if codes:
        text += f" (exit code {', '.join(map(str, codes))})"
    return text + tail


class Pipelines:
    """The builds of one WorkerServer (`server.pipelines`): start, look up, cancel."""

    def __init__(self, server: WorkerServer, keep_builds: int = 100,
                 keep_seconds: float = 3600.0) -> None:
        self.server = server
        self.keep_builds = keep_builds
        self.keep_seconds = keep_seconds
        self.accepting = True
        self._builds: OrderedDict[str, Build] = OrderedDict()

    def start(self, pipeline: Pipeline, build_id: str | None = None) -> tuple[Build, bool]:
        """(build, created): an existing `build_id` returns that build and starts nothing (a
        retried call never runs a pipeline twice); None names a new one `b-<8 hex>`. Must be
        called from the server's event loop. ConfigError for a bad id or a stage over the
        server's limits; NotAccepting while the server shuts down."""
        if build_id is not None and build_id in self._builds:
            return self._builds[build_id], False
        if not self.accepting:
            raise NotAccepting("the server is shutting down: it starts no builds")
        if build_id is not None and not BUILD_ID.match(build_id):
            raise ConfigError(f"build id {build_id!r}: 1 to 63 letters, digits, '.', '_' or "
                              "'-', starting with a letter or digit")
        limit = self.server.settings.limits.pod_count_limit
        for stage in pipeline.stages:
            if stage.workers > limit:
                raise ConfigError(f"{pipeline.where(stage.name)}: stages: {stage.name}: "
                                  f"workers {stage.workers} is over this server's limit "
                                  f"of {limit} (limits.max_pod_count / max_workers)")
        while build_id is None or build_id in self._builds:
            build_id = f"b-{secrets.token_hex(4)}"
        self._prune()
        build = Build(build_id, pipeline, self.server)
        self._builds[build_id] = build
        self.server.logrelay.collect_build(build_id, build.logs)
        build.runner = asyncio.create_task(build.run(), name=f"build-{build_id}")
        self.server.say(f"build {build_id}: pipeline {pipeline.name} started "
                        f"({len(pipeline.stages)} stage(s))")
        return build, True

    def get(self, build_id: str) -> Build | None:
        return self._builds.get(build_id)

    def builds(self) -> list[Build]:
        return list(self._builds.values())

    async def cancel(self, build_id: str) -> Build:
        """Cancel a build and wait until it has ended (its stages' pods deleted)."""
        build = self._builds.get(build_id)
        if build is None:
            raise UnknownBuild(f"no build {build_id!r} on this server")
        build.cancel()
        await build.wait()
        return build

    async def shutdown(self, grace: float) -> None:
        """No new builds; running ones cancelled within `grace` seconds, journals closed."""
        self.accepting = False
        running = [b for b in self._builds.values() if not b.done]
        if not running:
            return
        self.server.say(f"stopping: cancelling {len(running)} running build(s)")
        for build in running:
            build.cancel("the server is shutting down")
        runners = [b.runner for b in running if b.runner is not None]
        _, late = await asyncio.wait(runners, timeout=grace) if runners else (set(), set())
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)
        for build in running:       # past the grace period: ended without its report
            build._end()
            if not build.logs.closed:
                build.logs.close()
            build._ended.set()

    def _prune(self) -> None:
        now = time.time()
        for build_id, build in list(self._builds.items()):
            if build.finished is not None and now - build.finished > self.keep_seconds:
                del self._builds[build_id]
        finished = [i for i, b in self._builds.items() if b.finished is not None]
        while len(self._builds) >= self.keep_builds and finished:
            del self._builds[finished.pop(0)]
