"""workers/builds.py against a real Redis 7.0: one create per build id (two at once make one),
the lease's compare-and-set (a replica whose lease was taken writes nothing), resume from a
sequence, log lines written once whoever relays them again and capped per pod with the excess
said, cancel requests heard on renewal, ended builds expiring and trimmed past keep_builds."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from devtrip_scale.workers.builds import NOT_OWNER, BuildStore
from devtrip_scale.workers.config import RedisModel
from devtrip_scale.workers.intake import connect
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
)
from testbed.redis import Redis

pytestmark = pytest.mark.integration

STAGES = [StageStatus("a", StageState.WAITING), StageStatus("b", StageState.WAITING, ("a",))]


def run(redis_server: Redis, body: Any, **options: Any) -> Any:
    async def main() -> Any:
        redis = connect(RedisModel(url=redis_server.url))
        store = BuildStore(redis, f"t{uuid.uuid4().hex[:6]}", **options)
        try:
            return await body(store)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def event(message: str, state: BuildState = BuildState.RUNNING) -> ProgressEvent:
    return ProgressEvent(1.0, "b1", state, "a", StageState.RUNNING, 1, -1, "", message)


async def create(store: BuildStore, build: str, token: str) -> bool:
    return await store.create(build, token, pipeline_text="{}", file_name="ci.yaml",
                              pipeline="ci", stages=STAGES, now=1.0)


def test_two_creates_of_one_id_at_once_make_one_build_and_one_owner(redis_server: Redis) -> None:
    async def body(store: BuildStore) -> None:
        made = await asyncio.gather(*(create(store, "b1", f"r{i}") for i in range(10)))
        assert sorted(made) == [False] * 9 + [True]
        owner = await store.owner("b1")
        assert owner == f"r{made.index(True)}"
        assert await store.running() == ["b1"]
        status = await store.status("b1")
        assert status is not None and [s.name for s in status.stages] == ["a", "b"]

    run(redis_server, body)


def test_a_replica_whose_lease_was_taken_writes_nothing(redis_server: Redis) -> None:
    async def body(store: BuildStore) -> None:
        assert await create(store, "b1", "old")
        assert await store.append("b1", "old", event("one"), {}) == 1
        await store.redis.delete(store.key("b1", "lease"))          # expired
        assert await store.take("b1", "new") and not await store.take("b1", "old")
        assert await store.renew(["b1"], "old") == {"b1": (False, None)}
        assert await store.append("b1", "old", event("stale"), {}) == NOT_OWNER
        assert await store.add_lines("b1", "old", []) == NOT_OWNER
        assert not await store.release("b1", "old") and await store.owner("b1") == "new"
        assert await store.append("b1", "new", event("two"), {}) == 2
        await store.request_cancel("b1", "asked on replica B")
        assert await store.renew(["b1"], "new") == {"b1": (True, "asked on replica B")}

    run(redis_server, body)


def test_progress_resumes_from_a_sequence_and_ends_at_its_end(redis_server: Redis) -> None:
    async def body(store: BuildStore) -> None:
        assert await create(store, "b1", "r")
        for i in range(5):
            await store.append("b1", "r", event(f"m{i}"), {})
        reader = store.progress("b1", 2)
        got = [await reader.__anext__() for _ in range(3)]
        assert [(s, e.message) for s, e in got] == [(3, "m2"), (4, "m3"), (5, "m4")]  # type: ignore[misc]
        await store.append("b1", "r", event("last", BuildState.SUCCEEDED), {}, end=True)
        rest = [x async for x in reader]
        assert [x[0] for x in rest if not isinstance(x, Missed)] == [6]
        # the start trimmed away (an expired build's journal): said, not silently skipped
        await store.redis.xtrim(store.key("b1", "progress"), minid="0-4", approximate=False)
        items = [x async for x in store.progress("b1", 0, follow=False)]
        assert items[0] == Missed(1, 3) and [x[0] for x in items[1:]] == [4, 5, 6]  # type: ignore[index]

    run(redis_server, body)


def test_log_lines_are_written_once_and_capped_per_pod_with_the_excess_said(
        redis_server: Redis) -> None:
    def line(pod: str, n: int) -> LogLine:
        return LogLine(float(n), f"{pod} {n}", pod, build_id="b1")

    async def body(store: BuildStore) -> None:
        assert await create(store, "b1", "r")
        first = [(n, line("p", n)) for n in range(1, 4)]
        assert await store.add_lines("b1", "r", first) == 3
        # an adopter relays the pod again from its start: only the new lines are written
        again = [(n, line("p", n)) for n in range(1, 7)]
        assert await store.add_lines("b1", "r", again) == 2          # 4 and 5; 6 is over the cap
        assert await store.add_lines("b1", "r", [(1, line("q", 1))]) == 1
        await store.end_logs("b1", "r")
        items = [x async for x in store.logs("b1")]
        texts = [x[1].text for x in items if not isinstance(x, Missed)]
        assert texts[:6] == ["p 1", "p 2", "p 3", "p 4", "p 5", "q 1"]
        assert texts[6].startswith("[devscale] 1 more line(s) of pod p not kept: over the "
                                   "limit of 5 per pod")
        assert [x[0] for x in items if not isinstance(x, Missed)] == list(range(1, 8))

    run(redis_server, body, lines_per_pod=5)


def test_ended_builds_expire_and_the_oldest_past_keep_builds_are_deleted(
        redis_server: Redis) -> None:
    async def body(store: BuildStore) -> None:
        for i in range(3):
            assert await create(store, f"b{i}", "r")
            await store.append(f"b{i}", "r", event("end", BuildState.SUCCEEDED), {}, end=True)
            assert await store.finish(f"b{i}", "r") == 1
            assert await store.finish(f"b{i}", "r") == NOT_OWNER      # the lease went with it
            await asyncio.sleep(0.01)
        assert await store.running() == []
        assert await store.unreported() == ["b0", "b1", "b2"]
        assert not await store.exists("b0"), "past keep_builds (2): the oldest is gone"
        assert await store.exists("b1") and await store.exists("b2")
        ttl = await store.redis.pttl(store.key("b2", "progress"))
        assert 0 < ttl <= 60_000
        assert await store.claim_report("b2", "r") and not await store.claim_report("b2", "x")
        await store.reported("b2")
        assert await store.unreported() == ["b0", "b1"]

    run(redis_server, body, keep_builds=2, keep_seconds=60)
