"""`devscale workers serve`: the stream intake, the pod watch and the task machinery, async end
to end (asyncio tasks; no thread per pod).

A request is acked only once all its pods exist. Task state lives in Redis (store.py) and in
the pods' labels, so a restarted server, or another replica, carries on what one left: a
terminal pod is handled by whoever sees it (log kept, outcome recorded, retry created, pod
deleted — each step idempotent: finishing.py), and exactly one server reports the task (a
Redis claim). `start_task`/`cancel_task`/`retry_task` are the entry points of pipeline stages
(executor.py, through engine.TaskEngine: this module knows nothing of pipelines) and, with
`scale_up`/`scale_down`, of the gRPC API.
SIGTERM: stop reading, let in-flight requests finish within the grace period, leave the rest
unacked for others. Redis or the API server down: bounded backoff, reconnect, /healthz 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import DevscaleError
from devtrip_scale.core.httpserve import METRICS, TEXT, Reply, serve
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.notify import Notifier
from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    INDEX_LABEL,
    SELECTOR,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
)
from devtrip_scale.workers.config import WorkersSettings
from devtrip_scale.workers.engine import Cancelled, Stopping
from devtrip_scale.workers.finishing import MAX_BACKOFF, PodEnds, TaskListener, redis_problem
from devtrip_scale.workers.intake import Entry, Intake
from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, parse
from devtrip_scale.workers.results import Reporter
from devtrip_scale.workers.store import Spec, TaskState, TaskStore
from devtrip_scale.workers.tasks import (
    Capacity,
    Outcome,
    PodResult,
    RetryPolicy,
    TaskResult,
    classify,
    pod_name,
    summarise,
    task_key,
)
from devtrip_scale.workers.telemetry import Telemetry

log = logging.getLogger("devscale.workers")
MAX_INFLIGHT = 1000


class WorkerServer(PodEnds):
    def __init__(self, settings: WorkersSettings, kube: AsyncKube, redis: Redis, *,
                 consumer: str | None = None, notifiers: Sequence[Notifier] = (),
                 say: Callable[[str], None] | None = None, intake: bool = True) -> None:
        """`intake=False`: read no scale requests from the stream (the gRPC API still starts
        tasks and pipelines; Redis keeps their state either way)."""
        from devtrip_scale.workers.logrelay import LogRelay
        from devtrip_scale.workers.watch import PodWatch

        self.settings = settings
        self.kube = kube
        self.redis = redis
        self.consumer = consumer or settings.redis.consumer or socket.gethostname()
        self.intake = Intake(redis, settings.redis, self.consumer)
        self.reading = intake
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
        self.listeners: dict[str, TaskListener] = {}     # task key → its stage's executor
        self._seen_running: set[str] = set()             # pods told Running to a listener
        # told every pod event (synchronously: must not block), e.g. the otto_handler forwarder
        self.pod_observers: list[Callable[[str, dict[str, Any]], None]] = []
        # extra fields of a build's result, asked for when it is reported (build id → fields)
        self.build_notes: list[Callable[[str], Awaitable[dict[str, str]]]] = []
        # awaited first on shutdown, with the grace period (the wiring hands builds over here)
        self.on_stop: list[Callable[[float], Awaitable[None]]] = []

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
        # builds first (the wiring's hooks): no new ones, running ones handed over
        for hook in self.on_stop:
            await hook(self.settings.shutdown_grace_seconds)
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
        backoff = Backoff(0.5, MAX_BACKOFF, jitter=0.2)
        while not self.stop.is_set():
            try:
                if not self.redis_ok:
                    await self.redis.ping()
                    if self.reading:
                        await self.intake.ensure_group()
                        self.intake.restart()
                    self.redis_ok = True
                    backoff.reset()
                    self.telemetry.connected.labels("redis").set(1)
                    self.say(f"reading {self.settings.redis.stream} as {self.consumer} of "
                             f"group {self.settings.redis.group} at "
                             f"{self.settings.redis.safe_url()}" if self.reading else
                             f"task state in Redis at {self.settings.redis.safe_url()}; the "
                             "stream intake is off")
                if not self.reading:        # only keep knowing whether Redis is there
                    await self._sleep(5)
                    await self.redis.ping()
                    continue
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
                    self.say(f"redis: {redis_problem(e)} ({self.settings.redis.safe_url()}); "
                             "reconnecting")
                self.redis_ok = False
                self.telemetry.connected.labels("redis").set(0)
                await self._sleep(backoff.next())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _upkeep(self) -> None:
        """Keep held entries ours, and refresh the gauges."""
        every = max(0.5, min(5.0, self.settings.redis.claim_idle_seconds / 3))
        while True:
            await asyncio.sleep(every)
            self._gauges()
            if not self.redis_ok or not self.reading:
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
        backoff = Backoff(0.5, MAX_BACKOFF, jitter=0.2)
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
                    problem = redis_problem(e) if isinstance(e, RedisError | OSError) else str(e)
                    self.errors.append(problem)
                    self.say(f"request {entry.id}: {problem}; not acked, again in "
                             f"{backoff.current:.1f}s")
                if self.stop.is_set():
                    return
                await self._sleep(backoff.next())
                if self.stop.is_set():
                    return
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
            result = await self.scale_down(request)
        else:
            try:
                result = await self.scale_up(request)
            except Cancelled:
                result = "cancelled"
        await self.intake.ack(entry.id)
        t.requests.labels(kind, result).inc()

    async def scale_up(self, req: ScaleUp, created: list[str] | None = None) -> str:
        """Create the task's pods under the cap; `created` (if given) gets the names of
        those this call created (not those that existed: 409)."""
        key = task_key(req.task_id)
        if await self.store.is_done(key):
            return "duplicate"
        try:
            await self.start_task(Spec(req.task_id, req.pod_count, req.entry_id, req.metadata),
                                  ticket=req.entry_id, created=created)
        except Cancelled:
            return "cancelled"
        self._created(req.entry_id)
        return "acked"

    async def start_task(self, spec: Spec, listener: TaskListener | None = None,
                         ticket: str | None = None, created: list[str] | None = None) -> str:
        """Start a task (its pods from `spec.template`, else the config's worker) and return
        its key once all its pods exist. Idempotent: pods that exist are kept, a task already
        reported starts nothing (its listener is told its result at once). `ticket` queues it
        under the cap (default: the task key). Raises Cancelled (cancelled while it waited for
        room), Stopping, or the Kubernetes/Redis error that stopped it (call again). `created`
        (if given) gets the names of the pods this call created (not those that existed: 409)."""
        key = task_key(spec.task_id)
        if listener is not None:
            self.listeners[key] = listener
        reported = await self.task_result(spec.task_id)
        if reported is not None:
            if listener is not None:
                self.listeners.pop(key, None)
                listener.task_done(reported)
            return key
        state = await self.store.begin(key, spec)
        if state.cancelled:
            raise Cancelled
        assert state.spec is not None
        spec = state.spec
        missing = [i for i in range(spec.pod_count) if i not in state.results]
        for i in missing:      # ended while nobody listened (a build adopted): finish it now
            ended = self.watch.pods.get(pod_name(spec.task_id, i, state.attempt(i)))
            if ended is not None and classify(ended) is not None and \
                    not ended["metadata"].get("deletionTimestamp"):
                self._finish_later(ended)
        if missing and self.watch.synced.is_set():
            missing = await self._vanished(key, state, missing, listener)
        if not missing:       # every worker ended, maybe while nobody listened: report now
            await self._finalize(key)
            return key
        bodies = [self._pod_body(spec, i, state.attempt(i)) for i in missing]
        names = [b["metadata"]["name"] for b in bodies]
        await self._admit(ticket or key, key, [n for n in names if n not in self.watch.pods])
        try:
            cancelled = (await self.store.state(key)).cancelled
        except BaseException:
            cancelled = True
            raise
        finally:
            if cancelled:
                self.capacity.release(n for n in names if n not in self.watch.pods)
                self._wake()
        if cancelled:
            raise Cancelled
        outcomes = await asyncio.gather(*(self.kube.create_pod(b) for b in bodies),
                                        return_exceptions=True)
        # which attempts' pods exist now (created, or 409): a pod of these that later vanishes
        # unwatched is never created again (_vanished)
        await self.store.mark_created(key, {i: state.attempt(i) for i, o in
                                            zip(missing, outcomes, strict=True)
                                            if not isinstance(o, BaseException)})
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            self.capacity.release(n for n, o in zip(names, outcomes, strict=True)
                                  if isinstance(o, BaseException) and n not in self.watch.pods)
            self._wake()
            raise failed[0]
        if created is not None:
            created.extend(n for n, o in zip(names, outcomes, strict=True) if o is True)
        return key

    async def _vanished(self, key: str, state: TaskState, missing: list[int],
                        listener: TaskListener | None) -> list[int]:
        """Of a task's unfinished indexes, those still to create: an index whose current
        attempt's pod was created, has no result and is not there (it ended or was deleted
        while no server watched) is never created again — it is recorded lost."""
        assert state.spec is not None
        spec = state.spec
        gone = [i for i in missing if state.created.get(i, -1) >= state.attempt(i)
                and pod_name(spec.task_id, i, state.attempt(i)) not in self.watch.pods]
        if not gone:
            return missing
        fresh = await self.store.state(key)       # a result recorded meanwhile wins
        for i in gone:
            name = pod_name(spec.task_id, i, state.attempt(i))
            if i in fresh.results or name in self.watch.pods:
                continue
            self.say(f"task {spec.task_id}: pod {name} vanished while no server watched it "
                     "(no result recorded): worker lost, not run again")
            await self.store.record(key, PodResult(i, Outcome.LOST, state.attempt(i) + 1, None,
                                                   None, name))
            if listener is not None:
                listener.worker_ended(i, state.attempt(i), name, Outcome.LOST, None)
        fresh = await self.store.state(key)
        return [i for i in missing if i not in fresh.results]

    def _finish_later(self, pod: dict[str, Any]) -> None:
        name: str = pod["metadata"]["name"]
        self._spawn_pod(name, lambda: self._finish(self.watch.pods.get(name, pod)))

    def stop_listening(self, task_id: str) -> None:
        """Its listener hears nothing more of a task (a build handed over or ended)."""
        self.listeners.pop(task_key(task_id), None)

    async def task_result(self, task_id: str) -> TaskResult | None:
        """A task's result once it has been reported (by any server), else None."""
        key = task_key(task_id)
        if not await self.store.is_done(key):
            return None
        state = await self.store.state(key)
        if state.spec is None:
            return None
        return summarise(state.spec.task_id, state.results.values(), state.cancelled, None)

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
        except asyncio.CancelledError:    # a stage cancelled while it waited: not queued
            self.capacity.withdraw(ticket)
            raise
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

    async def scale_down(self, req: ScaleDown) -> str:
        return "acked" if await self.cancel_task(req.task_id) else "duplicate"

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task: pending pods deleted at once, running ones after their log is kept
        (with the config's grace period), the task reported cancelled. False when it was
        already reported."""
        key = task_key(task_id)
        if await self.store.is_done(key):
            return False
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
        self.say(f"task {task_id}: cancelled ({len(pending)} pending and {len(running)} "
                 "running pod(s) deleted)")
        await self._finalize(key)
        return True

    async def stop_workers(self, task_id: str, pods: Sequence[str]) -> list[str]:
        """End some of a task's live workers early (a ScaleDown that keeps the others): each
        index is recorded cancelled first, so that no retry replaces it; pending pods are
        deleted at once, running ones after their log is kept, with the config's grace
        period. The task is reported once its last worker ends. The names stopped."""
        key = task_key(task_id)
        state = await self.store.state(key)
        if state.spec is None or await self.store.is_done(key):
            return []
        chosen = [self.watch.pods[n] for n in pods if n in self.watch.pods and
                  self.watch.pods[n]["metadata"]["labels"].get(TASK_LABEL) == key]
        for p in chosen:
            labels = p["metadata"]["labels"]
            index, attempt = int(labels[INDEX_LABEL]), int(labels[ATTEMPT_LABEL])
            if index not in state.results:
                await self.store.record(key, PodResult(index, Outcome.CANCELLED, attempt + 1,
                                                       None, None, p["metadata"]["name"]))
        pending = [p for p in chosen if (p.get("status") or {}).get("phase") in (None,
                                                                                  "Pending")]
        running = [p for p in chosen if p not in pending]
        await asyncio.gather(*(self.kube.delete_pod(p["metadata"]["name"], 0) for p in pending))
        for p in running:
            await self._keep_log(p)
        await asyncio.gather(*(self.kube.delete_pod(p["metadata"]["name"],
                                                    self.settings.cancel_grace_seconds)
                               for p in running))
        await self._finalize(key)
        return [p["metadata"]["name"] for p in chosen]

    async def retry_task(self, task_id: str, delay: float, reason: str) -> None:
        """Start every unfinished index of a task again with a new attempt after `delay`
        seconds (a pipeline stage that timed out): the current pods' logs are kept and they
        are deleted; the new attempt counts as a retry of each index."""
        key = task_key(task_id)
        state = await self.store.state(key)
        if state.spec is None or state.cancelled or await self.store.is_done(key):
            return
        spec = state.spec
        old = []
        for i in range(spec.pod_count):
            if i in state.results:
                continue
            attempt = state.attempt(i)
            await self.store.next_attempt(key, i, attempt + 1, state.failures.get(i, 0) + 1,
                                          state.disruptions.get(i, 0))
            old.append(pod_name(spec.task_id, i, attempt))
            listener = self.listeners.get(key)
            if listener is not None:
                listener.worker_retrying(i, attempt + 1, delay, reason)
            self._create_later(key, spec, i, attempt + 1, delay)
        pods = [self.watch.pods[n] for n in old if n in self.watch.pods]
        for p in pods:
            await self._keep_log(p)
        await asyncio.gather(*(self.kube.delete_pod(p["metadata"]["name"], 0) for p in pods))


def task_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("annotations", {}).get(TASK_ID_ANNOTATION, ""))


async def serve_http(server: WorkerServer, host: str, port: int) -> asyncio.Server:
    """/healthz (200 when Redis and the API server are reachable, else 503) and /metrics."""
    from prometheus_client import generate_latest

    def healthz() -> Reply:
        ok, text = server.health()
        return (200 if ok else 503), f"{'ok' if ok else 'not ready'}: {text}\n".encode(), TEXT

    def metrics() -> Reply:
        server._gauges()
        return 200, bytes(generate_latest(server.telemetry.registry)), METRICS

    return await serve(host, port, {"/healthz": healthz, "/metrics": metrics})
