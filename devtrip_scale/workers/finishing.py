"""How a worker pod's end is handled: log kept, outcome recorded or a retry created, pod
deleted, the task reported once — each step idempotent, so any server (or this one restarted)
can do it for a pod it sees end. WorkerServer's part that the pod watch drives.

A pipeline stage's task differs only where its Spec says so: its pod template, its retry policy
(which failures, how many, a backoff before the new attempt's pod), and its end told to its
TaskListener (the executor) instead of the results stream and the notifiers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import RedisError

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import DevscaleError, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    BUILD_ID_ANNOTATION,
    BUILD_LABEL,
    CONTAINER,
    ENTRY_ANNOTATION,
    INDEX_LABEL,
    META_ENV_PREFIX,
    POD_COUNT_ANNOTATION,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
    logs,
)
from devtrip_scale.workers.config import WorkerModel, WorkersSettings
from devtrip_scale.workers.logrelay import LogRelay
from devtrip_scale.workers.pipeline import RetryOn, StageRetryModel, retry_delay
from devtrip_scale.workers.pods import worker_pod
from devtrip_scale.workers.results import Reporter
from devtrip_scale.workers.store import Spec, TaskState, TaskStore
from devtrip_scale.workers.tasks import (
    Capacity,
    Outcome,
    PodResult,
    RetryPolicy,
    TaskResult,
    classify,
    exit_code,
    pod_name,
    summarise,
)
from devtrip_scale.workers.telemetry import Telemetry
from devtrip_scale.workers.watch import PodWatch

MAX_BACKOFF = 30.0


class TaskListener(Protocol):
    """Told what happens to one task's workers (a pipeline stage's executor). Called from the
    server's tasks: must not block."""

    def worker_running(self, index: int, attempt: int, pod: str) -> None: ...

    def worker_ended(self, index: int, attempt: int, pod: str, outcome: Outcome,
                     exit_code: int | None) -> None: ...

    def worker_retrying(self, index: int, attempt: int, delay: float, reason: str) -> None: ...

    def task_done(self, result: TaskResult) -> None: ...


class PodEnds:
    """The pod-ending half of WorkerServer (a mixin: WorkerServer sets these attributes)."""

    settings: WorkersSettings
    kube: AsyncKube
    store: TaskStore
    reporter: Reporter
    policy: RetryPolicy
    capacity: Capacity
    watch: PodWatch
    logrelay: LogRelay
    telemetry: Telemetry
    logs_dir: Path
    consumer: str
    say: Callable[[str], None]
    stop: asyncio.Event
    errors: list[str]
    listeners: dict[str, TaskListener]
    _seen_running: set[str]
    pod_observers: list[Callable[[str, dict[str, Any]], None]]
    _pod_tasks: dict[str, asyncio.Task[None]]
    _tickets: dict[str, tuple[str, asyncio.Event]]

    def _pod_body(self, spec: Spec, index: int, attempt: int) -> dict[str, Any]:
        template = (WorkerModel.model_validate_json(spec.template) if spec.template
                    else self.settings.worker)
        return worker_pod(template, spec.task_id, index, attempt, spec.pod_count,
                          spec.entry_id, spec.metadata, build_id=spec.build_id,
                          stage=spec.stage)

    def _wake(self, tickets: list[str] | None = None) -> None:
        for ticket in tickets if tickets is not None else self.capacity.admit():
            if ticket in self._tickets:
                self._tickets[ticket][1].set()

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Every change the watch sees (runs in the watch's task: must not block)."""
        self.logrelay.on_pod(kind, pod)
        for observe in self.pod_observers:
            observe(kind, pod)
        name = pod["metadata"]["name"]
        outcome = classify(pod)
        self._tell_running(kind, pod)
        if kind == "DELETED" or outcome is not None:
            self._wake(self.capacity.release([name]))
        else:
            self.capacity.hold(name)
        if kind == "DELETED":
            if outcome is None:
                self._spawn_pod(name, lambda: self._lost(pod))
        elif outcome is not None and not pod["metadata"].get("deletionTimestamp") and \
                self._mine(pod):
            self._spawn_pod(name, lambda: self._finish(self.watch.pods.get(name, pod)))

    def _mine(self, pod: dict[str, Any]) -> bool:
        """Whether this server finishes the pod: any worker of a stream task; a build stage's
        only on the replica that drives its build (the one with its listener: it relays the
        pod's log to its end first) — a stage pod that ended while nobody drove its build is
        finished by the replica that adopts the build (start_task)."""
        labels = pod["metadata"].get("labels") or {}
        return BUILD_LABEL not in labels or labels.get(TASK_LABEL, "") in self.listeners

    def _tell_running(self, kind: str, pod: dict[str, Any]) -> None:
        """A stage's listener hears once that a worker pod runs."""
        meta = pod["metadata"]
        name, labels = meta["name"], meta.get("labels") or {}
        if kind == "DELETED":
            self._seen_running.discard(name)
            return
        listener = self.listeners.get(labels.get(TASK_LABEL, ""))
        if listener is None or name in self._seen_running or \
                (pod.get("status") or {}).get("phase") not in ("Running", "Succeeded", "Failed"):
            return
        self._seen_running.add(name)
        with contextlib.suppress(KeyError, ValueError):
            listener.worker_running(int(labels[INDEX_LABEL]), int(labels[ATTEMPT_LABEL]), name)

    def _spawn_pod(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if name in self._pod_tasks or self.stop.is_set():
            return
        task = asyncio.create_task(self._guarded(name, work), name=f"pod-{name}")
        self._pod_tasks[name] = task

    async def _guarded(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a pod's handling; on a failure again, with bounded backoff (each step of the
        handling is idempotent)."""
        backoff = Backoff(0.5, MAX_BACKOFF)
        try:
            for _ in range(10):
                try:
                    await work()
                    return
                except (DevscaleError, RedisError, OSError) as e:
                    problem = redis_problem(e) if isinstance(e, RedisError | OSError) else str(e)
                    self.errors.append(problem)
                    self.say(f"pod {name}: {problem}; again in {backoff.current:.1f}s")
                await asyncio.sleep(backoff.next())
        finally:
            self._pod_tasks.pop(name, None)

    async def _keep_log(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name, labels = meta["name"], meta["labels"]
        try:
            text = await self.kube.read_log(name, CONTAINER)
        except KubeNotFound:
            text = "(no log: the pod or its container is gone)\n"
        except KubeForbidden:
            raise          # RBAC: told, and the pod kept until its log can be read
        except KubeError as e:   # the kubelet has none (never started, node gone)
            text = f"(no log: {e})\n"
        phase = (pod.get("status") or {}).get("phase")
        header = (f"index {labels.get(INDEX_LABEL)} attempt {labels.get(ATTEMPT_LABEL)} "
                  f"{phase} exit {exit_code(pod)}")
        await asyncio.to_thread(logs.keep, self.logs_dir, labels[TASK_LABEL], name, header,
                                text)

    async def _finish(self, pod: dict[str, Any]) -> None:
        """A pod ended: keep its log, record or retry, delete it, report the task if done."""
        meta = pod["metadata"]
        name, labels = meta["name"], meta["labels"]
        key, index, attempt = labels[TASK_LABEL], int(labels[INDEX_LABEL]), \
            int(labels[ATTEMPT_LABEL])
        await self.logrelay.drained(name)     # relayed to the end before it is deleted
        state = await self._state_of(pod)
        stale = state.spec is None or index in state.results or attempt < state.attempt(index)
        if not stale:
            await self._keep_log(pod)
            outcome = classify(pod)
            assert outcome is not None
            self.telemetry.finished.labels(outcome.value).inc()
            self._tell_ended(key, index, attempt, name, outcome, exit_code(pod))
            await self._next(key, state, index, attempt, outcome, pod)
        await self.kube.delete_pod(name, 0)
        await self._finalize(key)

    async def _lost(self, pod: dict[str, Any]) -> None:
        """A pod vanished before it ended (deleted, or its node lost): a new attempt that does
        not use up a retry — unless the task was cancelled or the attempt is already over."""
        labels = pod["metadata"]["labels"]
        key, index, attempt = labels[TASK_LABEL], int(labels[INDEX_LABEL]), \
            int(labels[ATTEMPT_LABEL])
        state = await self._state_of(pod)
        if state.spec is None or state.cancelled or index in state.results or \
                attempt < state.attempt(index):
            return
        self.telemetry.finished.labels(Outcome.LOST.value).inc()
        self._tell_ended(key, index, attempt, pod["metadata"]["name"], Outcome.LOST, None)
        await self._next(key, state, index, attempt, Outcome.LOST, pod)
        await self._finalize(key)

    async def _state_of(self, pod: dict[str, Any]) -> TaskState:
        """The task state of a pod's task; rebuilt from the pod itself when Redis lost it (a
        Redis restarted without persistence) and the task is not reported yet."""
        meta = pod["metadata"]
        labels, notes = meta["labels"], meta.get("annotations") or {}
        key = labels[TASK_LABEL]
        state = await self.store.state(key)
        if state.spec is not None or await self.store.is_done(key) or \
                BUILD_ID_ANNOTATION in notes:   # a stage's template is not on its pods
            return state
        try:
            spec = Spec(notes[TASK_ID_ANNOTATION], int(notes[POD_COUNT_ANNOTATION]),
                        notes[ENTRY_ANNOTATION], _metadata_of(pod))
        except (KeyError, ValueError):
            return state          # not a pod this version made: left alone
        state = await self.store.begin(key, spec)
        attempt = int(labels[ATTEMPT_LABEL])
        index = int(labels[INDEX_LABEL])
        if attempt > state.attempt(index):   # as many failures as attempts: never more retries
            await self.store.next_attempt(key, index, attempt, attempt, 0)
            state = await self.store.state(key)
        self.say(f"task {spec.task_id}: state rebuilt from pod {meta['name']}")
        return state

    def _tell_ended(self, key: str, index: int, attempt: int, pod: str, outcome: Outcome,
                    code: int | None) -> None:
        listener = self.listeners.get(key)
        if listener is not None:
            listener.worker_ended(index, attempt, pod, outcome, code)

    async def _next(self, key: str, state: TaskState, index: int, attempt: int,
                    outcome: Outcome, pod: dict[str, Any]) -> None:
        assert state.spec is not None
        spec = state.spec
        if spec.retry:
            await self._next_stage(key, state, index, attempt, outcome, pod)
            return
        retry = None if state.cancelled else self.policy.next(
            outcome, state.failures.get(index, 0), state.disruptions.get(index, 0))
        if retry is not None:
            await self.store.next_attempt(key, index, attempt + 1, retry.failures,
                                          retry.disruptions)
            body = self._pod_body(spec, index, attempt + 1)   # the task's own template
            self.capacity.hold(body["metadata"]["name"])
            await self.kube.create_pod(body)
            self.telemetry.retries.labels(outcome.value).inc()
            self.say(f"task {spec.task_id}: worker {index} {outcome.value} "
                     f"(exit {exit_code(pod)}), attempt {attempt + 1} started")
            return
        final = Outcome.CANCELLED if state.cancelled else outcome
        await self.store.record(key, PodResult(index, final, attempt + 1, exit_code(pod),
                                               _seconds(pod), pod["metadata"]["name"]))

    async def _next_stage(self, key: str, state: TaskState, index: int, attempt: int,
                          outcome: Outcome, pod: dict[str, Any]) -> None:
        """`_next` under a stage's own retry policy: which failures, how many, and a backoff
        before the new attempt's pod (never a reused name) is created."""
        assert state.spec is not None
        spec = state.spec
        code = exit_code(pod)
        failures = state.failures.get(index, 0)
        delay = None
        if not state.cancelled and outcome in (Outcome.FAILED, Outcome.EVICTED, Outcome.LOST):
            delay = retry_delay(StageRetryModel.model_validate_json(spec.retry),
                                RetryOn(outcome.value), code, failures)
        if delay is not None:
            await self.store.next_attempt(key, index, attempt + 1, failures + 1,
                                          state.disruptions.get(index, 0))
            reason = f"worker {index} {outcome.value}" + (
                f" (exit {code})" if code is not None else "")
            listener = self.listeners.get(key)
            if listener is not None:
                listener.worker_retrying(index, attempt + 1, delay, reason)
            self.telemetry.retries.labels(outcome.value).inc()
            self.say(f"task {spec.task_id}: {reason}, attempt {attempt + 1} in {delay:g}s")
            self._create_later(key, spec, index, attempt + 1, delay)
            return
        final = Outcome.CANCELLED if state.cancelled else outcome
        await self.store.record(key, PodResult(index, final, attempt + 1, code, _seconds(pod),
                                               pod["metadata"]["name"]))

    def _create_later(self, key: str, spec: Spec, index: int, attempt: int,
                      delay: float) -> None:
        """Create an index's new attempt after `delay` seconds, unless the task was cancelled
        or moved on meanwhile (a restart re-creates it in _recover)."""
        name = pod_name(spec.task_id, index, attempt)

        async def create() -> None:
            if delay > 0:
                await asyncio.sleep(delay)
            state = await self.store.state(key)
            if state.cancelled or index in state.results or state.attempt(index) != attempt:
                return
            self.capacity.hold(name)
            await self.kube.create_pod(self._pod_body(spec, index, attempt))
            await self.store.mark_created(key, {index: attempt})

        self._spawn_pod(f"{name}/create", create)

    async def _finalize(self, key: str, orphans: bool = False) -> None:
        """Report a complete task, once (a Redis claim). A pipeline stage's task is reported
        by the server running its build (the one with its listener; every server sees its
        pods end), or with `orphans` (recovery) by anyone, its build being gone."""
        state = await self.store.state(key)
        if not state.complete or state.spec is None:
            return
        if state.spec.build_id and key not in self.listeners and not orphans:
            return
        if not await self.store.claim(key, self.consumer):
            return
        assert state.spec is not None
        seconds = None if state.started is None else max(0.0, time.time() - state.started)
        result = summarise(state.spec.task_id, state.results.values(), state.cancelled, seconds)
        if state.spec.build_id:     # a pipeline stage: its build reports, once, at its end
            await self.store.close(key)
            listener = self.listeners.pop(key, None)
            if listener is not None:
                listener.task_done(result)
            self.say(f"build {state.spec.build_id} stage {state.spec.stage}: "
                     f"{result.summary()}")
            return
        try:
            await self.reporter.report(result, state.spec.entry_id,
                                       pod_name(state.spec.task_id, 0, 0))
        except BaseException:
            await self.store.unclaim(key)
            raise
        await self.store.close(key)
        for problem in self.reporter.problems:   # an Event or a notification that failed
            self.say(f"task {state.spec.task_id}: {problem}")
        self.reporter.problems.clear()
        if seconds is not None:
            self.telemetry.task_seconds.labels(result.outcome).observe(seconds)
        self.say(result.summary())

    async def _recover(self) -> None:
        """After the first list: finish what a crash left between steps — tasks whose pods are
        all done but not reported, and retries recorded but not created."""
        await self.watch.synced.wait()
        while True:
            try:
                for key in await self.store.open_tasks():
                    state = await self.store.state(key)
                    if state.spec is None or state.cancelled:
                        await self._finalize(key, orphans=True)
                        continue
                    for i in range(state.spec.pod_count):
                        a = state.attempt(i)
                        name = pod_name(state.spec.task_id, i, a)
                        if a > 0 and i not in state.results and name not in self.watch.pods \
                                and state.created.get(i, -1) < a:   # never made: make it
                            self.capacity.hold(name)
                            await self.kube.create_pod(self._pod_body(state.spec, i, a))
                    await self._finalize(key, orphans=True)
                return
            except (DevscaleError, RedisError, OSError) as e:
                self.say(f"recovery: {e}; again in 5s")
                await asyncio.sleep(5)


def _metadata_of(pod: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Request metadata back from a pod's env (keys in lower case: env names are upper)."""
    [container] = pod["spec"]["containers"][:1] or [{}]
    return tuple(sorted((e["name"][len(META_ENV_PREFIX):].lower(), e.get("value", ""))
                        for e in container.get("env") or []
                        if e["name"].startswith(META_ENV_PREFIX)))


def _seconds(pod: dict[str, Any]) -> float | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated") or {}
        if t.get("startedAt") and t.get("finishedAt"):
            start = datetime.fromisoformat(t["startedAt"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(t["finishedAt"].replace("Z", "+00:00"))
            return max(0.0, (end - start).total_seconds())
    return None


def redis_problem(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if text != type(e).__name__ else text
