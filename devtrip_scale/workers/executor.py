"""Pipeline builds: each stage a task of worker pods, started the moment its own needs are
done; the build's state, progress and logs written to Redis (builds.py) as they happen.

A stage runs through the task engine (engine.TaskEngine, i.e. WorkerServer.start_task: the
stage's pod template, the shared cap, the rate-limited API, the one pod watch, logs kept before
pods are deleted, its own retry policy with backoff). The executor adds what only a pipeline
has: the DAG (pipeline.Plan), the stage timeout (KWOK, like some kubelets, does not enforce
activeDeadlineSeconds, so the executor does), fail-fast, cancel, and the build's progress.

A build belongs to the service: the replica that holds its lease in Redis drives it, any
replica reads it. `Pipelines` renews its leases (and hears cancel requests made on any replica)
every fifth of the lease, and adopts running builds whose lease nobody holds; on SIGTERM it
hands its builds over (leases released, no stage cancelled, no pod deleted). An adopted build
goes on from Redis: finished stages stay finished, running ones are re-attached to their task
(deterministic pod names, the task's attempt record: no worker runs twice), the rest start when
their needs are done. Every write checks the lease, so a replica that lost it writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import ConfigError, DevscaleError
from devtrip_scale.workers.builds import NOT_OWNER, BuildStore, stage_doc, stage_of
from devtrip_scale.workers.config import PipelinesModel
from devtrip_scale.workers.engine import Cancelled, Stopping, TaskEngine
from devtrip_scale.workers.journal import Journal
from devtrip_scale.workers.pipeline import Pipeline, Plan, RetryOn, StageModel, retry_delay
from devtrip_scale.workers.progress import (
    BuildState,
    BuildStatus,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
    shown_attempt,
)
from devtrip_scale.workers.store import Spec
from devtrip_scale.workers.tasks import Outcome, PodResult, TaskResult, pod_name, task_key

__all__ = ["Build", "BuildStatus", "NotAccepting", "Pipelines", "UnknownBuild", "stage_task_id"]

log = logging.getLogger("devscale.workers")
BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
CHECK_SECONDS = 30.0        # how often a waiting stage also looks in Redis for its result
WAITING_SECONDS = 5.0       # a stage's pod not running after this long: its phase and reason said
START_TRIES = 8             # a stage's pods not created after this many tries: the stage fails
LOG_BATCH = 500             # log lines per write to Redis


class UnknownBuild(DevscaleError):
    """No build of that id (never started, or no longer kept)."""


class NotAccepting(DevscaleError):
    """The server is shutting down and starts no builds."""


class HandedOver(Exception):
    """The build is no longer driven here (its lease released or lost)."""


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
    """One run of a pipeline, driven here while this replica holds its lease. Its progress
    events and log lines go to Redis in order (a writer task and a log pump); `logs` is the
    relay's merged stream of its pods' lines on their way there."""

    def __init__(self, build_id: str, pipeline: Pipeline, engine: TaskEngine,
                 store: BuildStore, token: str, *, runs: dict[str, StageStatus] | None = None,
                 started: float | None = None, adopted: bool = False) -> None:
        self.id = build_id
        self.pipeline = pipeline
        self.store = store
        self.token = token
        self.logs: Journal[LogLine] = Journal()
        self.plan = Plan(pipeline)
        self.state = BuildState.RUNNING
        self.started = time.time() if started is None else started
        self.finished: float | None = None
        self.message = ""
        self.adopted = adopted
        self._engine = engine
        self._runs = runs or {s.name: StageStatus(s.name, StageState.WAITING, s.needs, 0,
                                                  s.workers) for s in pipeline.stages}
        self._tasks: dict[str, asyncio.Task[tuple[bool, str]]] = {}
        self._cancel = asyncio.Event()
        self._why_cancelled = ""
        self._ended = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[ProgressEvent, dict[str, str], bool] | None] = \
            asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self.handing_over = False        # releasing its lease: nothing more is done or written
        self.ending = False              # every stage is over: the build is being ended
        self.last_sequence = 0
        self.runner: asyncio.Task[None] | None = None
        self.silent_pods: tuple[str, ...] = ()   # pods with no log line, and why (logs end)
        self._leaving: asyncio.Future[None] | None = None
        self._ended_hooks: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- reading

    def status(self) -> BuildStatus:
        return BuildStatus(self.id, self.pipeline.name, self.state,
                           tuple(self._runs[s.name] for s in self.pipeline.stages),
                           self.started, self.finished, self.last_sequence, self.message)

    async def wait(self) -> BuildStatus:
        """The status once the build has ended here (or was handed over)."""
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
              whole: bool = False, end: bool = False) -> None:
        """A progress event (and the stage's or the whole build's state) on its way to Redis."""
        if self.handing_over:
            return
        if stage and state is None:
            state = self._runs[stage].state
        changes: dict[str, str] = {}
        if stage:
            changes[f"stage:{stage}"] = stage_doc(self._runs[stage])
        if whole:
            changes.update({f"stage:{r.name}": stage_doc(r) for r in self._runs.values()})
            changes.update({"state": self.state.value, "message": self.message})
            if self.finished is not None:
                changes["finished"] = repr(self.finished)
        self._outbox.put_nowait((ProgressEvent(
            time.time(), self.id, self.state, stage, state, attempt, worker_index, pod, message,
            tuple(self._runs[s.name] for s in self.pipeline.stages) if whole else ()),
            changes, end))

    def _stage_changed(self, stage: str, state: StageState, message: str = "") -> None:
        run = self._runs[stage]
        finished = time.time() if state.done and run.finished is None else run.finished
        self._set(stage, state=state, message=message, finished=finished)
        self._emit(stage, state=state, attempt=self._runs[stage].attempt, message=message)

    async def _write(self) -> None:
        """Write the progress events in order, those emitted together in one round trip; a
        Redis failure is tried again (bounded backoff, nothing skipped); a lost lease ends the
        driving here."""
        backoff = 0.2
        while True:
            first = await self._outbox.get()
            batch = [first]
            while not self._outbox.empty() and batch[-1] is not None:
                batch.append(self._outbox.get_nowait())
            items = [b for b in batch if b is not None]
            while items:
                try:
                    seqs = await self.store.append_many(self.id, self.token, items)
                    break
                except (RedisError, OSError) as e:
                    self._engine.say(f"build {self.id}: progress not written ({e}); again in "
                                     f"{backoff:.1f}s")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            backoff = 0.2
            if items and NOT_OWNER in seqs:
                self._lost("its lease was taken by another replica")
                return
            if items:
                self.last_sequence = seqs[-1]
            if batch[-1] is None:
                return

    async def _flush(self) -> None:
        """Every event emitted so far written (or the writer gone)."""
        if self._writer is None or self._writer.done():
            return
        self._outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._writer)

    async def _pump_logs(self) -> None:
        """The build's merged log lines into Redis, each with its ordinal in its pod's log (so
        that lines an earlier owner wrote are not written twice)."""
        position = 0
        ordinals: dict[str, int] = {}
        backoff = 0.2
        while True:
            await self.logs.wait(position)
            items = self.logs.items(position)
            if not items:
                if self.logs.closed:
                    return
                continue
            for chunk in range(0, len(items), LOG_BATCH):
                batch = items[chunk:chunk + LOG_BATCH]
                numbered = []
                for _, line in batch:
                    ordinals[line.pod] = ordinals.get(line.pod, 0) + 1
                    numbered.append((ordinals[line.pod], line))
                while True:
                    try:
                        added = await self.store.add_lines(self.id, self.token, numbered)
                        break
                    except (RedisError, OSError) as e:
                        self._engine.say(f"build {self.id}: log lines not written ({e}); again "
                                         f"in {backoff:.1f}s")
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                backoff = 0.2
                if added == NOT_OWNER:
                    self._lost("its lease was taken by another replica")
                    return
            position = items[-1][0]

    def _lost(self, why: str) -> None:
        """Another replica drives the build now: stop here, cancelling nothing."""
        if not self.handing_over and self.runner is not None and not self.runner.done():
            self._engine.say(f"build {self.id}: no longer driven here: {why}")
            self._leaving = asyncio.ensure_future(self.hand_over(release=False))

    async def hand_over(self, release: bool = True) -> None:
        """Stop driving the build without touching its stages (their pods run on, their
        results are recorded by whoever sees them end): the events so far written, the log
        lines so far relayed written, the lease released for another replica to adopt."""
        if self.handing_over:
            await self._ended.wait()
            return
        if self.ending and self.runner is not None:
            # every stage is over: let it end here (logs, last message, end, report) rather
            # than leave an adopter to do it again
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.runner), 45)
            if self.done:
                return
        self.handing_over = True
        try:
            tasks: list[asyncio.Task[Any]] = [*self._tasks.values()]
            if self.runner is not None:
                tasks.append(self.runner)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._engine.logrelay.drop_build(self.id)
            if not self.logs.closed:
                self.logs.close()
            if self._pump is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(self._pump, 10)
            await self._flush()
            for stage in self.pipeline.stages:
                self._engine.stop_listening(stage_task_id(self.id, stage.name))
            if release:
                with contextlib.suppress(RedisError, OSError):
                    await self.store.release(self.id, self.token)
        finally:
            self._end_here()

    def _end_here(self) -> None:
        self._ended.set()
        hooks, self._ended_hooks = self._ended_hooks, []
        for hook in hooks:
            hook()

    # ---------------------------------------------------------------- running

    def begin(self) -> None:
        """Start driving: the progress writer, the log pump (from the relay) and the run."""
        self._writer = asyncio.create_task(self._write(), name=f"build-{self.id}-progress")
        self._engine.logrelay.collect_build(self.id, self.logs)
        self._pump = asyncio.create_task(self._pump_logs(), name=f"build-{self.id}-logs")
        self.runner = asyncio.create_task(self.run(), name=f"build-{self.id}")

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if not self.handing_over:
                self._end_here()

    async def _run(self) -> None:
        if self.adopted:
            resumed = self._restore()
            self._emit(message=f"build {self.id} adopted by {self._engine.consumer}" + (
                f": stage(s) {', '.join(resumed)} re-attached" if resumed else ""), whole=True)
        else:
            self._emit(message=f"build {self.id} of pipeline {self.pipeline.name} started: "
                               f"{len(self.pipeline.stages)} stage(s)", whole=True)
        try:
            await self._loop()
        except asyncio.CancelledError:
            if self.handing_over:
                return                     # another replica goes on from Redis
            await self._stop_stages("the server stopped")
            self._skip_all("the server stopped")
            raise
        except Exception as e:              # a bug: the build ends failed, never hangs
            log.exception("build %s", self.id)
            await self._stop_stages(f"internal error: {e}")
            self._skip_all(f"internal error: {e}")
            self.message = f"internal error: {e}"
        if not self.handing_over:
            await self._end()

    def _restore(self) -> list[str]:
        """An adopted build's plan from its stages' states in Redis; the stages that were
        running (re-attached to their tasks, not started again)."""
        resumed: list[str] = []
        while True:
            progressed = False
            for name in self.plan.ready():
                state = self._runs[name].state
                if state in (StageState.SUCCEEDED, StageState.FAILED):
                    self.plan.finished(name, state is StageState.SUCCEEDED)
                    progressed = True
                elif state is StageState.CANCELLED:
                    self.plan.cancel(name)
                elif state is StageState.SKIPPED:
                    self.plan.states[name] = StageState.SKIPPED
                elif state is StageState.WAITING:
                    self._start(name)
                else:
                    resumed.append(name)
                    self._tasks[name] = asyncio.create_task(
                        self._run_stage(self.pipeline.stage(name)),
                        name=f"build-{self.id}-{name}")
            if not progressed:
                break
        for name, run in self._runs.items():     # skipped by a failure the plan replayed
            if run.state is StageState.SKIPPED:
                self.plan.states[name] = StageState.SKIPPED
        return resumed

    async def _close_logs(self, within: float = 30) -> None:
        """The build's log journal closes once every pod's log is relayed to its end (the
        relay flushes what it holds) and written to Redis; a relay that cannot finish within
        `within` seconds is said and the journal closed anyway, so a build never hangs on its
        logs."""
        try:
            await asyncio.wait_for(self._engine.logrelay.finish_build(
                self.id, before_close=self._note_silent_pods), within)
        except TimeoutError:
            self._engine.say(f"build {self.id}: logs not drained within {within:g}s; closed")
        finally:
            if not self.logs.closed:
                self._note_silent_pods()
                self.logs.close()
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, within)
        for attempt in range(5):
            try:
                await self.store.note_silent(self.id, self.silent_pods)
                await self.store.end_logs(self.id, self.token)
                return
            except (RedisError, OSError) as e:
                self._engine.say(f"build {self.id}: end of logs not written ({e})")
                await asyncio.sleep(0.2 * 2 ** attempt)

    def _note_silent_pods(self) -> None:
        """Before the log journal closes: its pods that wrote nothing, and why (readers that
        got no line are told when the journal ends)."""
        self.silent_pods = self._engine.logrelay.silent(self.id)

    async def _report(self) -> None:
        """The build's outcome as a task's: an entry on the results stream (task_id = the
        build id, plus build_id, pipeline and stages), an Event, and the notifiers for a
        failure. Called once per build (the end in Redis says who). Best effort: a failure is
        said, never raised."""
        engine = self._engine
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
        for note in engine.build_notes:       # e.g. the otto_handler forwarding counts
            try:
                extra.update(await note(self.id))
            except Exception as e:
                engine.say(f"build {self.id}: a note on its result failed: {e}")
        try:
            await asyncio.wait_for(engine.reporter.report(
                result, "", pod_name(stage_task_id(self.id, first), 0, 0),
                {**extra, "build_id": self.id, "pipeline": self.pipeline.name,
                 "stages": stages, "message": self.message}), 30)
        except (DevscaleError, RedisError, OSError, TimeoutError) as e:
            engine.say(f"build {self.id}: its result could not be reported: {e}")
        for problem in engine.reporter.problems:
            engine.say(f"build {self.id}: {problem}")
        engine.reporter.problems.clear()
        said = "" if self.message == self.state.value else f": {self.message}"
        engine.say(f"build {self.id}: {self.state.value}{said}")   # "cancelled", said once

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

    async def _end(self) -> None:
        """The final state; the logs drained and ended; the last progress event (the end of
        the journal); the build ended in Redis and, by the one call that ended it, reported."""
        self.ending = True
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
        await self._close_logs()
        self._emit(message=f"build {self.state.value}: {self.message} "
                           f"({self.finished - self.started:.1f}s)", whole=True, end=True)
        await self._flush()
        ended = NOT_OWNER
        for attempt in range(5):
            try:
                ended = await self.store.finish(self.id, self.token)
                break
            except (RedisError, OSError) as e:
                self._engine.say(f"build {self.id}: its end not written ({e})")
                await asyncio.sleep(0.2 * 2 ** attempt)
        if ended == 1 and await self.store.claim_report(self.id, self.token):
            await self._report()
            await self.store.reported(self.id)

    async def _run_stage(self, stage: StageModel) -> tuple[bool, str]:
        """One stage to its end: (succeeded, why). Cancelling it cancels its task's pods."""
        server = self._engine
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
            if not self.handing_over:      # handed over: the stage runs on, for its adopter
                cleanup = asyncio.ensure_future(server.cancel_task(task_id))
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(cleanup)
            raise
        finally:
            server.stop_listening(task_id)
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

        for name, pod in list(self._engine.watch.pods.items()):
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
        """engine.start_task, again on a transient failure (bounded backoff)."""
        backoff = Backoff(0.5, 15.0)
        for attempt in range(START_TRIES):
            try:
                await self._engine.start_task(spec, listener)
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
    """The builds this replica drives, and the door to every build in Redis: start, look up,
    cancel; the lease keeper and the adopter (`begin`); the hand-over on shutdown."""

    def __init__(self, engine: TaskEngine, store: BuildStore, settings: PipelinesModel,
                 pod_count_limit: int) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.pod_count_limit = pod_count_limit
        self.token = f"{engine.consumer}:{secrets.token_hex(6)}"
        self.accepting = True
        self.driving: dict[str, Build] = {}
        self.adopted = 0
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, engine: TaskEngine, redis: Redis, prefix: str, settings: PipelinesModel,
           pod_count_limit: int) -> Pipelines:
        return cls(engine, BuildStore(redis, prefix, keep_builds=settings.keep_builds,
                                      keep_seconds=settings.keep_seconds,
                                      lease_seconds=settings.lease_seconds,
                                      lines_per_pod=settings.log_lines_per_pod),
                   settings, pod_count_limit)

    def begin(self) -> None:
        """Start keeping leases and adopting builds nobody drives (idempotent)."""
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="build-leases")

    async def start(self, pipeline: Pipeline, build_id: str | None = None,
                    ) -> tuple[str, bool]:
        """(build id, created): an existing `build_id` (on any replica) is attached to and
        starts nothing; None names a new one `b-<8 hex>`. ConfigError for a bad id or a stage
        over the server's limits; NotAccepting while the server shuts down."""
        if build_id is not None and await self.store.exists(build_id):
            return build_id, False
        if not self.accepting:
            raise NotAccepting("the server is shutting down: it starts no builds")
        if build_id is not None and not BUILD_ID.match(build_id):
            raise ConfigError(f"build id {build_id!r}: 1 to 63 letters, digits, '.', '_' or "
                              "'-', starting with a letter or digit")
        limit = self.pod_count_limit
        for stage in pipeline.stages:
            if stage.workers > limit:
                raise ConfigError(f"{pipeline.where(stage.name)}: stages: {stage.name}: "
                                  f"workers {stage.workers} is over this server's limit "
                                  f"of {limit} (limits.max_pod_count / max_workers)")
        named = build_id is not None
        while True:
            build_id = build_id if named else f"b-{secrets.token_hex(4)}"
            assert build_id is not None
            build = Build(build_id, pipeline, self.engine, self.store, self.token)
            created = await self.store.create(
                build_id, self.token, pipeline_text=pipeline.model_dump_json(),
                file_name=pipeline.source, pipeline=pipeline.name,
                stages=list(build._runs.values()), now=build.started)
            if created or named:
                break
        if not created:
            return build_id, False
        self._drive(build)
        self.engine.say(f"build {build_id}: pipeline {pipeline.name} started "
                        f"({len(pipeline.stages)} stage(s))")
        self.begin()
        return build_id, True

    def _drive(self, build: Build) -> None:
        self.driving[build.id] = build
        build.begin()
        assert build.runner is not None
        build.runner.add_done_callback(lambda _: self._settled(build))

    def _settled(self, build: Build) -> None:
        if build.handing_over and not build.done:    # not gone until the hand-over is done
            build._ended_hooks.append(lambda: self._settled(build))
            return
        if self.driving.get(build.id) is build:
            del self.driving[build.id]

    def get(self, build_id: str) -> Build | None:
        """The build if this replica drives it."""
        return self.driving.get(build_id)

    async def status(self, build_id: str) -> BuildStatus:
        status = await self.store.status(build_id)
        if status is None:
            raise UnknownBuild(f"no build {build_id!r} (never started, or no longer kept)")
        return status

    async def cancel(self, build_id: str, why: str = "the build was cancelled",
                     within: float | None = None) -> BuildStatus:
        """Cancel a build, wherever it runs (the request goes through Redis to its owner), and
        wait until it has ended (its stages' pods deleted) or `within` seconds passed."""
        status = await self.status(build_id)
        if status.state is not BuildState.RUNNING:
            return status
        await self.store.request_cancel(build_id, why)
        build = self.driving.get(build_id)
        if build is not None:
            build.cancel(why)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (within if within is not None else
                                  self.settings.lease_seconds * 2 + 60)
        while loop.time() < deadline:
            status = await self.status(build_id)
            if status.state is not BuildState.RUNNING:
                return status
            await asyncio.sleep(0.1)
        return status

    async def shutdown(self, grace: float) -> None:
        """No new builds; the running ones handed over (their leases released, nothing
        cancelled) for other replicas to adopt."""
        self.accepting = False
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        running = [b for b in self.driving.values() if not b.done]
        if running:
            self.engine.say(f"stopping: handing {len(running)} running build(s) over to the "
                            "other replicas (nothing cancelled)")
            await asyncio.wait([asyncio.ensure_future(b.hand_over()) for b in running],
                               timeout=max(grace, 1))

    async def _keep(self) -> None:
        """Renew the leases of the builds driven here (and hear cancel requests) every fifth
        of the lease; adopt running builds nobody holds every adopt_seconds."""
        every = max(0.1, min(self.settings.lease_seconds / 5, self.settings.adopt_seconds))
        loop = asyncio.get_running_loop()
        next_adopt = loop.time()
        while True:
            try:
                driven = [b for b in self.driving.values() if not b.handing_over]
                if driven:
                    answers = await self.store.renew([b.id for b in driven], self.token)
                    for b in driven:
                        ours, why = answers[b.id]
                        if not ours:
                            b._lost("its lease expired and another replica took it")
                        elif why is not None:
                            b.cancel(why)
                if self.accepting and loop.time() >= next_adopt and \
                        self.engine.watch.synced.is_set():
                    next_adopt = loop.time() + self.settings.adopt_seconds
                    for build_id in await self.store.running():
                        if build_id not in self.driving and self.accepting:
                            await self._adopt(build_id)
                    for build_id in await self.store.unreported():
                        if build_id not in self.driving and self.accepting:
                            await self._report_orphan(build_id)
            except (RedisError, OSError, DevscaleError) as e:
                self.engine.say(f"builds: {e}")
            await asyncio.sleep(every)

    async def _report_orphan(self, build_id: str) -> None:
        """Report an ended build whose reporter died between its end and its report (its
        claim expired), from its state in Redis."""
        raw = await self.store.raw(build_id)
        if not raw:
            await self.store.redis.srem(self.store.unreported_key, build_id)
            return
        if not await self.store.claim_report(build_id, self.token):
            return
        build = self._from_redis(build_id, raw)
        if build is None:
            return
        build.state = BuildState(raw.get("state", "failed"))
        build.message = raw.get("message", "")
        build.finished = float(raw["finished"]) if raw.get("finished") else None
        self.engine.say(f"build {build_id}: reported by {self.engine.consumer} (its reporter "
                        "went away)")
        await build._report()
        await self.store.reported(build_id)

    def _from_redis(self, build_id: str, raw: dict[str, str]) -> Build | None:
        try:
            pipeline = Pipeline.model_validate_json(raw["text"])
            order: list[str] = json.loads(raw["order"])
            runs = {n: stage_of(raw[f"stage:{n}"]) for n in order}
        except (ValueError, KeyError) as e:
            self.engine.say(f"build {build_id}: cannot be read back: {e}")
            return None
        return Build(build_id, pipeline, self.engine, self.store, self.token, runs=runs,
                     started=float(raw.get("started", time.time())), adopted=True)

    async def _adopt(self, build_id: str) -> None:
        """Take over a running build whose lease nobody holds, and go on with it."""
        if not await self.store.take(build_id, self.token):
            return
        raw = await self.store.raw(build_id)
        if not raw or raw.get("state") != BuildState.RUNNING.value:
            await self.store.release(build_id, self.token)
            if not raw:      # its keys are gone: not a running build any more
                await self.store.redis.srem(self.store.running_key, build_id)
            return
        build = self._from_redis(build_id, raw)
        if build is None:
            await self.store.release(build_id, self.token)
            return
        build.last_sequence = int(raw.get("seq", "0"))
        self.adopted += 1
        self.engine.say(f"build {build_id}: adopted (nobody held its lease)")
        self._drive(build)
