"""The stream intake against a real Redis 7.0: a new group starts at `$` (MKSTREAM), a
consumer reads its own pending entries before new ones, delivery counts come from XPENDING,
XAUTOCLAIM takes over entries idle too long, keep() resets idle time without counting a
delivery, and a dead letter is written and acked together. Also a blocking read with a
socket timeout above the block time does not time out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from devtrip_scale.workers.config import RedisModel
from devtrip_scale.workers.intake import Intake, connect
from testbed.redis import Redis

pytestmark = pytest.mark.integration


def run(redis_server: Redis, body: Callable[[Any, RedisModel], Awaitable[None]],
        **settings: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    cfg = RedisModel(url=redis_server.url, stream=f"{tag}:s", group="g",
                     dead_letter_stream=f"{tag}:dead",
                     **{"block_seconds": 0.2, "socket_timeout_seconds": 6, **settings})

    async def main() -> None:
        r = connect(cfg)
        try:
            await body(r, cfg)
        finally:
            await r.aclose()

    asyncio.run(main())


def test_new_group_starts_at_the_end(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        await r.xadd(cfg.stream, {"type": "old"})
        intake = Intake(r, cfg, "c1")
        await intake.ensure_group()
        await intake.ensure_group()                       # BUSYGROUP is fine
        new = await r.xadd(cfg.stream, {"type": "new"})
        got = await intake.read(10)
        assert [e.id for e in got] == [new]

    run(redis_server, body)


def test_group_created_with_the_stream(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        await Intake(r, cfg, "c1").ensure_group()
        assert await r.exists(cfg.stream) == 1

    run(redis_server, body)


def test_own_pending_first_with_delivery_counts(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        first = Intake(r, cfg, "c1")
        await first.ensure_group()
        ids = [await r.xadd(cfg.stream, {"n": str(i)}) for i in range(3)]
        assert [e.id for e in await first.read(2)] == ids[:2]    # delivered, never acked
        again = Intake(r, cfg, "c1")                             # the same consumer restarted
        pending = await again.read(10)
        assert [(e.id, e.deliveries) for e in pending] == [(ids[0], 2), (ids[1], 2)]
        assert [e.id for e in await again.read(10)] == [ids[2]]   # then new entries
        await again.ack(ids[0])
        assert await again.pending() == 2

    run(redis_server, body)


def test_idle_entries_of_another_consumer_are_reclaimed(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        dead, alive = Intake(r, cfg, "dead"), Intake(r, cfg, "alive")
        await dead.ensure_group()
        entry = await r.xadd(cfg.stream, {"n": "1"})
        await dead.read(1)
        assert await alive.reclaim(10) == []                    # not idle long enough yet
        await asyncio.sleep(0.6)
        [claimed] = await alive.reclaim(10)
        assert claimed.id == entry and claimed.deliveries == 2
        [info] = await r.xpending_range(cfg.stream, cfg.group, "-", "+", 10)
        assert info["consumer"] == "alive"

    run(redis_server, body, claim_idle_seconds=0.5)


def test_keep_resets_idle_time_without_a_delivery(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        holder, other = Intake(r, cfg, "holder"), Intake(r, cfg, "other")
        await holder.ensure_group()
        entry = await r.xadd(cfg.stream, {"n": "1"})
        await holder.read(1)
        for _ in range(4):
            await asyncio.sleep(0.3)
            await holder.keep([entry])
        assert await other.reclaim(10) == []                    # never idle for 0.5 s
        [info] = await r.xpending_range(cfg.stream, cfg.group, "-", "+", 10)
        assert info["consumer"] == "holder" and info["times_delivered"] == 1

    run(redis_server, body, claim_idle_seconds=0.5)


def test_dead_letter_writes_and_acks(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        intake = Intake(r, cfg, "c1")
        await intake.ensure_group()
        await r.xadd(cfg.stream, {"type": "bogus"})
        [entry] = await intake.read(1)
        await intake.dead_letter(entry, "type 'bogus' is not scale_up or scale_down")
        [(_, fields)] = await r.xrange(cfg.dead_letter_stream)
        assert fields["entry_id"] == entry.id and fields["field.type"] == "bogus"
        assert "bogus" in fields["reason"] and await intake.pending() == 0

    run(redis_server, body)


def test_blocking_reads_do_not_time_out(redis_server: Redis) -> None:
    async def body(r: Any, cfg: RedisModel) -> None:
        intake = Intake(r, cfg, "c1")
        await intake.ensure_group()
        for _ in range(3):   # an empty stream: each read blocks block_seconds and returns
            assert await intake.read(1) == []

    run(redis_server, body, block_seconds=1.0)
