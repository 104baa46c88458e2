"""A task's outcome, told three ways: an entry on the results stream, a Kubernetes Event, and
for failed tasks a notification through the same Slack/email routing, quiet period and secret
rules as `check` (devtrip_scale.notify)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.kube.events import Involved, event_body
from devtrip_scale.notify import Notice, Notifier, NotifyState, fan_out, select
from devtrip_scale.workers.config import WorkersSettings
from devtrip_scale.workers.tasks import TaskResult

COMPONENT = "devscale-workers"


def result_fields(result: TaskResult, entry_id: str, consumer: str) -> dict[str, str]:
    """The results stream entry of a task (pure)."""
    return {
        "task_id": result.task_id, "outcome": result.outcome, "request_entry": entry_id,
        "pods": str(len(result.pods)), "pods_succeeded": str(result.succeeded),
        "pods_failed": str(result.failed),
        "seconds": "" if result.seconds is None else f"{result.seconds:.3f}",
        "workers": json.dumps([p.encode() for p in result.pods], separators=(",", ":")),
        "reported_by": consumer,
    }


def task_event(result: TaskResult, pod: str, namespace: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event on the task's first pod (pure): Normal when it succeeded."""
    reason = {"succeeded": "TaskSucceeded", "failed": "TaskFailed",
              "cancelled": "TaskCancelled"}[result.outcome]
    return event_body(Involved("v1", "Pod", pod, namespace),
                      "Warning" if result.outcome == "failed" else "Normal", reason,
                      result.summary(), COMPONENT, now)


FAILING = "failed:workers"   # one condition for all tasks: a storm of failures is told once


def failure_notice(result: TaskResult) -> Notice:
    return Notice("failed", "critical", FAILING, f"worker task {result.task_id} failed",
                  result.summary())


def tell(result: TaskResult, told: NotifyState, now: datetime, quiet: timedelta
         ) -> tuple[list[Notice], NotifyState]:
    """What a finished task notifies (pure): a failure, unless one was told within the quiet
    period; after failures, the next success resolves the condition. Cancelled tasks tell
    nothing."""
    if result.outcome == "failed":
        return select([failure_notice(result)], told, now, quiet)
    if result.outcome == "succeeded" and FAILING in told.active:
        return select([], told, now, quiet)
    return [], told


class Reporter:
    def __init__(self, redis: Redis, kube: AsyncKube, settings: WorkersSettings,
                 notifiers: Sequence[Notifier], consumer: str) -> None:
        self.redis = redis
        self.kube = kube
        self.settings = settings
        self.notifiers = notifiers
        self.consumer = consumer
        self.told = NotifyState()
        self.problems: list[str] = []

    async def report(self, result: TaskResult, entry_id: str, first_pod: str,
                     extra: Mapping[str, str] | None = None) -> None:
        """The results stream first (it must not be lost); the Event and the notification are
        best effort, their failures kept in `problems`. `extra`: more fields for the stream
        entry (a pipeline build's id, pipeline and stages)."""
        fields: dict[Any, Any] = {**result_fields(result, entry_id, self.consumer),
                                  **(extra or {})}
        await self.redis.xadd(self.settings.redis.results_stream, fields,
                              maxlen=self.settings.redis.results_maxlen, approximate=True)
        now = datetime.now(UTC)
        try:
            await self.kube.create_event(task_event(result, first_pod, self.kube.namespace, now))
        except Exception as e:   # an Event is not worth failing a task for
            self.problems.append(f"event for task {result.task_id}: {e}")
        if self.notifiers:
            quiet = timedelta(minutes=self.settings.notify.quiet_minutes)
            send, self.told = tell(result, self.told, now, quiet)
            if send:
                failures = await asyncio.to_thread(fan_out, self.kube.namespace, send,
                                                   self.notifiers)
                self.problems.extend(failures)
