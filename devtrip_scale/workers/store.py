"""Task state in Redis, so that any server (or this one restarted) can carry a task on after
its request was acked: the request's spec, each index's current attempt and retry counts, the
result of each finished index, and a claim that lets exactly one server report the task."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from devtrip_scale.workers.tasks import PodResult

KEEP_SECONDS = 7 * 86400     # a finished task's state and its claim are kept this long


@dataclass(frozen=True)
class Spec:
    """What a task runs. A pipeline stage's task also names its build and stage and carries
    its own pod template and retry policy (JSON of WorkerModel and StageRetryModel), so that
    any server can carry it on from Redis alone."""

    task_id: str
    pod_count: int
    entry_id: str
    metadata: tuple[tuple[str, str], ...] = ()
    build_id: str = ""
    stage: str = ""
    template: str = ""       # empty: the config's `worker:`
    retry: str = ""          # empty: the config's `retry:`

    def encode(self) -> str:
        doc: dict[str, Any] = {"taskId": self.task_id, "podCount": self.pod_count,
                               "entryId": self.entry_id, "metadata": dict(self.metadata)}
        if self.build_id:
            doc.update({"buildId": self.build_id, "stage": self.stage, "retry": self.retry})
        if self.template:      # a stage's, or a task's own (an ottoscaler.v1 ScaleUp)
            doc["template"] = self.template
        return json.dumps(doc)

    @classmethod
    def decode(cls, text: str) -> Spec:
        d = json.loads(text)
        return cls(d["taskId"], int(d["podCount"]), d["entryId"],
                   tuple(sorted(d.get("metadata", {}).items())), str(d.get("buildId", "")),
                   str(d.get("stage", "")), str(d.get("template", "")),
                   str(d.get("retry", "")))


@dataclass
class TaskState:
    spec: Spec | None = None
    started: float | None = None
    cancelled: bool = False
    attempts: dict[int, int] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    disruptions: dict[int, int] = field(default_factory=dict)
    results: dict[int, PodResult] = field(default_factory=dict)
    created: dict[int, int] = field(default_factory=dict)   # index → attempt whose pod was made

    def attempt(self, index: int) -> int:
        return self.attempts.get(index, 0)

    @property
    def complete(self) -> bool:
        return self.spec is not None and len(self.results) >= self.spec.pod_count


class TaskStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, task_key: str) -> str:
        return f"{self.prefix}:task:{task_key}"

    def _done(self, task_key: str) -> str:
        return f"{self.prefix}:done:{task_key}"

    async def begin(self, task_key: str, spec: Spec) -> TaskState:
        """Record the spec and start time unless there already are some; the state after."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._key(task_key), "spec", spec.encode())
            pipe.hsetnx(self._key(task_key), "started", repr(time.time()))
            await pipe.execute()
        return await self.state(task_key)

    async def state(self, task_key: str) -> TaskState:
        raw: dict[str, str] = await self.redis.hgetall(self._key(task_key))  # type: ignore[assignment]
        st = TaskState()
        for k, v in raw.items():
            kind, _, index = k.partition(":")
            if kind == "spec":
                st.spec = Spec.decode(v)
            elif kind == "started":
                st.started = float(v)
            elif kind == "cancelled":
                st.cancelled = True
            elif kind == "attempt":
                st.attempts[int(index)] = int(v)
            elif kind == "failures":
                st.failures[int(index)] = int(v)
            elif kind == "disruptions":
                st.disruptions[int(index)] = int(v)
            elif kind == "created":
                st.created[int(index)] = int(v)
            elif kind == "result":
                st.results[int(index)] = PodResult.decode(json.loads(v))
        return st

    async def next_attempt(self, task_key: str, index: int, attempt: int, failures: int,
                           disruptions: int) -> None:
        await self.redis.hset(self._key(task_key), mapping={
            f"attempt:{index}": attempt, f"failures:{index}": failures,
            f"disruptions:{index}": disruptions})

    async def mark_created(self, task_key: str, attempts: dict[int, int]) -> None:
        """Once an index's pod exists: which attempt (so that a pod that later vanishes
        unwatched is known to have run, and is never created a second time)."""
        if attempts:
            await self.redis.hset(self._key(task_key), mapping={
                f"created:{i}": a for i, a in attempts.items()})

    async def record(self, task_key: str, result: PodResult) -> None:
        await self.redis.hsetnx(self._key(task_key), f"result:{result.index}",
                                json.dumps(result.encode()))

    async def cancel(self, task_key: str) -> None:
        await self.redis.hset(self._key(task_key), "cancelled", "1")

    async def is_done(self, task_key: str) -> bool:
        return bool(await self.redis.exists(self._done(task_key)))

    async def claim(self, task_key: str, consumer: str) -> bool:
        """True for the one server that reports the task."""
        return bool(await self.redis.set(self._done(task_key), consumer, nx=True,
                                         ex=KEEP_SECONDS))

    async def unclaim(self, task_key: str) -> None:
        await self.redis.delete(self._done(task_key))

    async def close(self, task_key: str) -> None:
        await self.redis.expire(self._key(task_key), KEEP_SECONDS)

    async def open_tasks(self) -> list[str]:
        """Task keys with state that is not yet reported."""
        keys: list[str] = []
        prefix = f"{self.prefix}:task:"
        async for key in self.redis.scan_iter(match=f"{prefix}*", count=500):
            task_key = str(key)[len(prefix):]
            if not await self.is_done(task_key):
                keys.append(task_key)
        return keys


def spec_fields(state: TaskState) -> dict[str, Any]:
    return {} if state.spec is None else {"taskId": state.spec.task_id,
                                          "podCount": state.spec.pod_count}
