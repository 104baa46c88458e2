"""What the pipeline executor needs of the task engine (WorkerServer), as a Protocol: start a
stage's task, cancel it, start its unfinished workers again, hear its end — so that the executor
depends on this small surface and the server knows nothing of pipelines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from devtrip_scale.workers.finishing import TaskListener
from devtrip_scale.workers.store import Spec
from devtrip_scale.workers.tasks import TaskResult

if TYPE_CHECKING:
    import asyncio

    from devtrip_scale.workers.logrelay import LogRelay
    from devtrip_scale.workers.results import Reporter
    from devtrip_scale.workers.watch import PodWatch


class Stopping(Exception):
    """The server is shutting down: leave the entry unacked."""


class Cancelled(Exception):
    """The task was cancelled while its request waited for room."""


class TaskEngine(Protocol):
    """The task machinery a pipeline build drives its stages through."""

    consumer: str
    logrelay: LogRelay
    reporter: Reporter
    watch: PodWatch
    stop: asyncio.Event
    say: Callable[[str], None]
    # extra fields of a build's result, asked for when it is reported (build id → fields)
    build_notes: list[Callable[[str], Awaitable[dict[str, str]]]]

    async def start_task(self, spec: Spec, listener: TaskListener | None = None,
                         ticket: str | None = None, created: list[str] | None = None) -> str: ...

    async def cancel_task(self, task_id: str) -> bool: ...

    async def retry_task(self, task_id: str, delay: float, reason: str) -> None: ...

    async def task_result(self, task_id: str) -> TaskResult | None: ...

    def stop_listening(self, task_id: str) -> None: ...
