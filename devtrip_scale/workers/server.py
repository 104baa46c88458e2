"""`devscale workers serve`: the stream intake, the pod watch and the task machinery, async end
to end (asyncio tasks; no thread per pod).

A request is acked only once all its pods exist. Task state lives in Redis (store.py) and in
the pods' labels, so a restarted server, or another replica, carries on what one left: a
terminal pod is handled by whoever sees it (log kept, outcome recorded, retry created, pod
deleted — each step idempotent), and exactly one server reports the task (a Redis claim).
SIGTERM: stop reading, let in-flight requests finish within the grace period, leave the rest
unacked for others. Redis or the API server down: bounded backoff, reconnect, /healthz 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from devtrip_scale.errors import DevscaleError, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.notify import Notifier
from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    CONTAINER,
    ENTRY_ANNOTATION,
    INDEX_LABEL,
    META_ENV_PREFIX,
    POD_COUNT_ANNOTATION,
    SELECTOR,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
    logs,
)
from devtrip_scale.workers.config import WorkersSettings
from devtrip_scale.workers.intake import Entry, Intake
from devtrip_scale.workers.kube import AsyncKube
from devtrip_scale.workers.pods import worker_pod
from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, parse
from devtrip_scale.workers.results import Reporter
from devtrip_scale.workers.store import Spec, TaskState, TaskStore
from devtrip_scale.workers.tasks import (
    Capacity,
    Outcome,
    PodResult,
    RetryPolicy,
    classify,
    exit_code,
    pod_name,
    summarise,
    task_key,
)

log = logging.getLogger("devscale.workers")
MAX_BACKOFF = 30.0
MAX_INFLIGHT = 1000


class Stopping(Exception):
    """The server is shutting down: leave the entry unacked."""


class Cancelled(Exception):
    """The task was cancelled while its request waited for room."""


class Telemetry:
    """The server's Prometheus series, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("devscale_workers_requests", "Stream entries consumed, by type "
                                "and what became of them", ["type", "result"], registry=r)
        self.pending = Gauge("devscale_workers_pending_entries", "Entries the consumer group "
                             "delivered and did not ack yet", registry=r)
        self.workers = Gauge("devscale_workers", "Worker pods now, by state (queued: admitted "
                             "requests' pods waiting for the cap)", ["state"], registry=r)
        self.finished = Counter("devscale_workers_finished", "Worker pods that ended, by "
                                "outcome", ["outcome"], registry=r)
        self.retries = Counter("devscale_workers_retries", "Attempts started again", ["cause"],
                               registry=r)
        self.task_seconds = Histogram(
            "devscale_workers_task_duration_seconds", "From a task's first request to its "
            "result", ["outcome"], registry=r,
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf")))
        self.created_seconds = Histogram(
            "devscale_workers_request_to_pods_seconds", "From XADD to all of a request's pods "
            "created", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")))
        self.connected = Gauge("devscale_workers_connected", "1 while the peer is reachable",
                               ["peer"], registry=r)
        self.api_calls = Gauge("devscale_workers_api_requests", "Kubernetes API requests "
                               "made, by verb and resource", ["verb", "resource"], registry=r)
        self.log_follows = Gauge("devscale_workers_log_follows", "Upstream pods/log follows "
                                 "open now", registry=r)
        self.log_readers = Gauge("devscale_workers_log_readers", "Clients reading relayed "
                                 "worker logs now", registry=r)


class WorkerServer:
    def __init__(self, settings: WorkersSettings, kube: AsyncKube, redis: Redis, *,
                 consumer: str | None = None, notifiers: Sequence[Notifier] = (),
                 say: Callable[[str], None] | None = None) -> None:
        from devtrip_scale.workers.logrelay import LogRelay
        from devtrip_scale.workers.watch import PodWatch

        self.settings = settings
        self.kube = kube
        self.redis = redis
        self.consumer = consumer or settings.redis.consumer or socket.gethostname()
        self.intake = Intake(redis, settings.redis, self.consumer)
        self.store = TaskStore(redis, settings.redis.stream)
        self.reporter = Reporter(redis, kube, settings, notifiers, self.consumer)
        self.policy = RetryPolicy(settings.retry.max_retries, settings.retry.max_disruptions)
        self.capacity = Capacity(settings.limits.max_workers)
        self.watch = PodWatch(kube, SELECTOR, self._on_pod)
        self.logrelay = LogRelay(kube, follow_all=True)   # every worker's log, live
        self.telemetry = Telemetry()
        self.logs_dir = Path(settings.logs_dir)
        self.say = say or (lambda text: log.info("%s", text))
        self.redis_ok = False
        self.stop = asyncio.Event()
        self.inflight: dict[str, Entry] = {}
        self.left_unacked: set[str] = set()    # entries given up unacked (shutdown)
        self._entry_tasks: set[asyncio.Task[None]] = set()
        self._pod_tasks: dict[str, asyncio.Task[None]] = {}
        self._tickets: dict[str, tuple[str, asyncio.Event]] = {}   # entry → (task key, event)
        self.created_latency: list[float] = []
        self.errors: list[str] = []

    # ---------------------------------------------------------------- lifecycle

    @property
    def ready(self) -> bool:
        return self.redis_ok and self.watch.connected

    def health(self) -> tuple[bool, str]:
        parts = [f"redis {'ok' if self.redis_ok else 'disconnected'}",
                 f"kubernetes {'ok' if self.watch.connected else 'disconnected'}"]
        if self.watch.problem:
            parts.append(self.watch.problem)
        return self.ready, "; ".join(parts)

    async def run(self) -> None:
        """Serve until `stop` is set, then shut down within the grace period."""
        watch = asyncio.create_task(self.watch.run(), name="pod-watch")
        upkeep = asyncio.create_task(self._upkeep(), name="upkeep")
        recovered = asyncio.create_task(self._recover(), name="recover")
        try:
            await self._intake_loop()
        finally:
            await self._shutdown([watch, upkeep, recovered])

    async def _shutdown(self, background: list[asyncio.Task[Any]]) -> None:
        busy = [*self._entry_tasks, *self._pod_tasks.values()]
        if busy:
            self.say(f"stopping: {len(self._entry_tasks)} request(s) and "
                     f"{len(self._pod_tasks)} pod(s) in flight, waiting up to "
                     f"{self.settings.shutdown_grace_seconds:g}s")
            _, late = await asyncio.wait(busy, timeout=self.settings.shutdown_grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.logrelay.aclose()
        left = len(self.left_unacked | set(self.inflight))
        self.say(f"stopped; {left} request(s) left unacked for other consumers" if left
                 else "stopped")

    async def _intake_loop(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                if not self.redis_ok:
                    await self.redis.ping()
                    await self.intake.ensure_group()
                    self.intake.restart()
                    self.redis_ok, backoff = True, 0.5
                    self.telemetry.connected.labels("redis").set(1)
                    self.say(f"reading {self.settings.redis.stream} as {self.consumer} of "
                             f"group {self.settings.redis.group} at "
                             f"{self.settings.redis.safe_url()}")
                room = MAX_INFLIGHT - len(self.inflight)
                if room <= 0:
                    await self._sleep(0.2)
                    continue
                read = asyncio.ensure_future(self.intake.read(min(self.settings.redis.batch,
                                                                  room)))
                stopping = asyncio.ensure_future(self.stop.wait())
                await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not read.done():
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await read
                    break
                for entry in read.result():
                    if entry.id not in self.inflight:
                        self._spawn_entry(entry)
            except (RedisError, OSError) as e:
                if self.redis_ok:
                    self.say(f"redis: {_redis_problem(e)} ({self.settings.redis.safe_url()}); "
                             "reconnecting")
                self.redis_ok = False
                self.telemetry.connected.labels("redis").set(0)
                await self._sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _upkeep(self) -> None:
        """Keep held entries ours, and refresh the gauges."""
        every = max(0.5, min(5.0, self.settings.redis.claim_idle_seconds / 3))
        while True:
            await asyncio.sleep(every)
            self._gauges()
            if not self.redis_ok:
                continue
            try:
                await self.intake.keep(list(self.inflight))
                self.telemetry.pending.set(await self.intake.pending())
            except (RedisError, OSError):
                pass

    def _gauges(self) -> None:
        pods = self.watch.pods.values()
        phases = [(p.get("status") or {}).get("phase") or "Pending" for p in pods
                  if not p["metadata"].get("deletionTimestamp")]
        t = self.telemetry
        t.workers.labels("pending").set(phases.count("Pending"))
        t.workers.labels("running").set(phases.count("Running"))
        t.workers.labels("succeeded").set(phases.count("Succeeded"))
        t.workers.labels("failed").set(phases.count("Failed"))
        t.workers.labels("queued").set(self.capacity.waiting)
        t.connected.labels("kubernetes").set(1 if self.watch.connected else 0)
        t.log_follows.set(self.logrelay.follows)
        t.log_readers.set(self.logrelay.readers)
        for call, n in self.kube.calls.items():
            verb, _, resource = call.partition(" ")
            t.api_calls.labels(verb, resource).set(n)

    # ---------------------------------------------------------------- requests

    def _spawn_entry(self, entry: Entry) -> None:
        self.inflight[entry.id] = entry
        task = asyncio.create_task(self._handle_entry(entry), name=f"entry-{entry.id}")
        self._entry_tasks.add(task)
        task.add_done_callback(self._entry_tasks.discard)

    async def _handle_entry(self, entry: Entry) -> None:
        backoff = 0.5
        handled = False
        try:
            while True:
                try:
                    await self._handle(entry)
                    handled = True
                    return
                except Stopping:
                    return
                except (DevscaleError, RedisError, OSError) as e:
                    problem = _redis_problem(e) if isinstance(e, RedisError | OSError) else str(e)
                    self.errors.append(problem)
                    self.say(f"request {entry.id}: {problem}; not acked, again in "
                             f"{backoff:.1f}s")
                if self.stop.is_set():
                    return
                await self._sleep(backoff * random.uniform(0.8, 1.2))
                if self.stop.is_set():
                    return
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self.inflight.pop(entry.id, None)
            if not handled:
                self.left_unacked.add(entry.id)

    async def _handle(self, entry: Entry) -> None:
        t = self.telemetry
        limit = self.settings.redis.max_deliveries
        if entry.fields is None:
            await self.intake.dead_letter(entry, "the entry was deleted from the stream before "
                                                 "it was acked")
            t.requests.labels("unknown", "dead_lettered").inc()
            return
        kind = entry.fields.get("type", "unknown")
        kind = kind if kind in ("scale_up", "scale_down") else "invalid"
        if entry.deliveries > limit:
            await self.intake.dead_letter(entry, f"delivered {entry.deliveries} times without "
                                                 f"being acked (redis.max_deliveries {limit})")
            t.requests.labels(kind, "dead_lettered").inc()
            self.say(f"request {entry.id}: dead-lettered after {entry.deliveries} deliveries")
            return
        request = parse(entry.id, entry.fields, self.settings.limits.pod_count_limit)
        if isinstance(request, Rejected):
            await self.intake.dead_letter(entry, request.reason)
            t.requests.labels(kind, "dead_lettered").inc()
            self.say(f"request {entry.id}: dead-lettered: {request.reason}")
            return
        if isinstance(request, ScaleDown):
            result = await self._scale_down(request)
        else:
            try:
                result = await self._scale_up(request)
            except Cancelled:
                result = "cancelled"
        await self.intake.ack(entry.id)
        t.requests.labels(kind, result).inc()

    async def _scale_up(self, req: ScaleUp) -> str:
        key = task_key(req.task_id)
        if await self.store.is_done(key):
            return "duplicate"
        state = await self.store.begin(key, Spec(req.task_id, req.pod_count, req.entry_id,
                                                 req.metadata))
        if state.cancelled:
            return "cancelled"
        assert state.spec is not None
        spec = state.spec
        bodies = [worker_pod(self.settings.worker, spec.task_id, i, state.attempt(i),
                             spec.pod_count, spec.entry_id, spec.metadata)
                  for i in range(spec.pod_count) if i not in state.results]
        names = [b["metadata"]["name"] for b in bodies]
        await self._admit(req.entry_id, key, [n for n in names if n not in self.watch.pods])
        if (await self.store.state(key)).cancelled:
            self.capacity.release(n for n in names if n not in self.watch.pods)
            self._wake()
            return "cancelled"
        outcomes = await asyncio.gather(*(self.kube.create_pod(b) for b in bodies),
                                        return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            self.capacity.release(n for n, o in zip(names, outcomes, strict=True)
                                  if isinstance(o, BaseException) and n not in self.watch.pods)
            self._wake()
            raise failed[0]
        self._created(req.entry_id)
        return "acked"

    def _created(self, entry_id: str) -> None:
        try:
            added = int(entry_id.split("-")[0]) / 1000
        except ValueError:
            return
        seconds = max(0.0, time.time() - added)
        self.created_latency.append(seconds)
        self.telemetry.created_seconds.observe(seconds)

    async def _admit(self, ticket: str, key: str, names: list[str]) -> None:
        """Wait until the request's pods fit under the cap (FIFO); Stopping or Cancelled."""
        if self.capacity.request(ticket, names):
            return
        event = asyncio.Event()
        self._tickets[ticket] = (key, event)
        self.say(f"request {ticket}: {len(names)} pod(s) wait for room under max_workers "
                 f"{self.capacity.limit} ({len(self.capacity.live)} live)")
        stopping = asyncio.ensure_future(self.stop.wait())
        waiting = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            waiting.cancel()
            self._tickets.pop(ticket, None)
        admitted = all(t != ticket for t, _ in self.capacity.queue)
        if not admitted:
            self.capacity.withdraw(ticket)
            if self.stop.is_set():
                raise Stopping
            raise Cancelled

    def _wake(self, tickets: list[str] | None = None) -> None:
        for ticket in tickets if tickets is not None else self.capacity.admit():
            if ticket in self._tickets:
                self._tickets[ticket][1].set()

    async def _scale_down(self, req: ScaleDown) -> str:
        key = task_key(req.task_id)
        if await self.store.is_done(key):
            return "duplicate"
        await self.store.cancel(key)
        for ticket, (k, event) in list(self._tickets.items()):
            if k == key:           # a request of this task still waiting for room
                self.capacity.withdraw(ticket)
                event.set()
        pods = [p for p in self.watch.pods.values()
                if p["metadata"]["labels"].get(TASK_LABEL) == key and classify(p) is None]
        pending = [p for p in pods if (p.get("status") or {}).get("phase") in (None, "Pending")]
        running = [p for p in pods if p not in pending]
        # pending pods first: they have done nothing yet, and free their room at once
        await asyncio.gather(*(self.kube.delete_pod(p["metadata"]["name"], 0) for p in pending))
        for p in running:
            await self._keep_log(p)
        await asyncio.gather(*(self.kube.delete_pod(p["metadata"]["name"],
                                                    self.settings.cancel_grace_seconds)
                               for p in running))
        state = await self.store.state(key)
        if state.spec is not None:
            for i in range(state.spec.pod_count):
                if i not in state.results:
                    await self.store.record(key, PodResult(
                        i, Outcome.CANCELLED, state.attempt(i) + 1, None, None,
                        pod_name(state.spec.task_id, i, state.attempt(i))))
        self.say(f"task {req.task_id}: cancelled ({len(pending)} pending and {len(running)} "
                 "running pod(s) deleted)")
        await self._finalize(key)
        return "acked"

    # ---------------------------------------------------------------- pods

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Every change the watch sees (runs in the watch's task: must not block)."""
        self.logrelay.on_pod(kind, pod)
        name = pod["metadata"]["name"]
        outcome = classify(pod)
        if kind == "DELETED" or outcome is not None:
            self._wake(self.capacity.release([name]))
        else:
            self.capacity.hold(name)
        if kind == "DELETED":
            if outcome is None:
                self._spawn_pod(name, lambda: self._lost(pod))
        elif outcome is not None and not pod["metadata"].get("deletionTimestamp"):
            self._spawn_pod(name, lambda: self._finish(self.watch.pods.get(name, pod)))

    def _spawn_pod(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if name in self._pod_tasks or self.stop.is_set():
            return
        task = asyncio.create_task(self._guarded(name, work), name=f"pod-{name}")
        self._pod_tasks[name] = task

    async def _guarded(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a pod's handling; on a failure again, with bounded backoff (each step of the
        handling is idempotent)."""
        backoff = 0.5
        try:
            for _ in range(10):
                try:
                    await work()
                    return
                except (DevscaleError, RedisError, OSError) as e:
                    problem = _redis_problem(e) if isinstance(e, RedisError | OSError) else str(e)
                    self.errors.append(problem)
                    self.say(f"pod {name}: {problem}; again in {backoff:.1f}s")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
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
        await self._next(key, state, index, attempt, Outcome.LOST, pod)
        await self._finalize(key)

    async def _state_of(self, pod: dict[str, Any]) -> TaskState:
        """The task state of a pod's task; rebuilt from the pod itself when Redis lost it (a
        Redis restarted without persistence) and the task is not reported yet."""
        meta = pod["metadata"]
        labels, notes = meta["labels"], meta.get("annotations") or {}
        key = labels[TASK_LABEL]
        state = await self.store.state(key)
        if state.spec is not None or await self.store.is_done(key):
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

    async def _next(self, key: str, state: TaskState, index: int, attempt: int,
                    outcome: Outcome, pod: dict[str, Any]) -> None:
        assert state.spec is not None
        spec = state.spec
        retry = None if state.cancelled else self.policy.next(
            outcome, state.failures.get(index, 0), state.disruptions.get(index, 0))
        if retry is not None:
            await self.store.next_attempt(key, index, attempt + 1, retry.failures,
                                          retry.disruptions)
            body = worker_pod(self.settings.worker, spec.task_id, index, attempt + 1,
                              spec.pod_count, spec.entry_id, spec.metadata)
            self.capacity.hold(body["metadata"]["name"])
            await self.kube.create_pod(body)
            self.telemetry.retries.labels(outcome.value).inc()
            self.say(f"task {spec.task_id}: worker {index} {outcome.value} "
                     f"(exit {exit_code(pod)}), attempt {attempt + 2} started")
            return
        final = Outcome.CANCELLED if state.cancelled else outcome
        await self.store.record(key, PodResult(index, final, attempt + 1, exit_code(pod),
                                               _seconds(pod), pod["metadata"]["name"]))

    async def _finalize(self, key: str) -> None:
        state = await self.store.state(key)
        if not state.complete or not await self.store.claim(key, self.consumer):
            return
        assert state.spec is not None
        seconds = None if state.started is None else max(0.0, time.time() - state.started)
        result = summarise(state.spec.task_id, state.results.values(), state.cancelled, seconds)
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
                        await self._finalize(key)
                        continue
                    for i in range(state.spec.pod_count):
                        a = state.attempt(i)
                        name = pod_name(state.spec.task_id, i, a)
                        if a > 0 and i not in state.results and name not in self.watch.pods:
                            self.capacity.hold(name)
                            await self.kube.create_pod(worker_pod(
                                self.settings.worker, state.spec.task_id, i, a,
                                state.spec.pod_count, state.spec.entry_id,
                                state.spec.metadata))
                    await self._finalize(key)
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


def _redis_problem(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if text != type(e).__name__ else text


def task_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("annotations", {}).get(TASK_ID_ANNOTATION, ""))


async def serve_http(server: WorkerServer, host: str, port: int) -> asyncio.Server:
    """/healthz (200 when Redis and the API server are reachable, else 503) and /metrics."""
    from prometheus_client import generate_latest

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = request.split(b" ", 2)[1].decode(errors="replace") if b" " in request else ""
            if path == "/healthz":
                ok, text = server.health()
                status, body, kind = (200 if ok else 503), (
                    f"{'ok' if ok else 'not ready'}: {text}\n").encode(), "text/plain"
            elif path == "/metrics":
                server._gauges()
                status, body = 200, bytes(generate_latest(server.telemetry.registry))
                kind = "text/plain; version=0.0.4"
            else:
                status, body, kind = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                         .encode() + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
