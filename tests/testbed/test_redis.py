"""Redis in the test bed (Debian's redis-server, no persistence): a stream round-trip with a
consumer group, as the worker system will use it, with the blocking and the asyncio client."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from testbed.redis import Redis

pytestmark = pytest.mark.integration


def test_stream_round_trip(redis_server: Redis) -> None:
    import redis

    stream = f"requests-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        entry = r.xadd(stream, {"deployment": "api", "replicas": "3"})
        r.xgroup_create(stream, "workers", id="0")
        [[name, [(got_id, fields)]]] = r.xreadgroup("workers", "w1", {stream: ">"}, count=10,
                                                    block=1000)
        assert (name, got_id, fields) == (stream, entry, {"deployment": "api", "replicas": "3"})
        assert r.xpending(stream, "workers")["pending"] == 1
        assert r.xack(stream, "workers", entry) == 1
        assert r.xpending(stream, "workers")["pending"] == 0
        assert r.xreadgroup("workers", "w1", {stream: ">"}, block=100) == []
    finally:
        r.close()


def test_asyncio_client_round_trip(redis_server: Redis) -> None:
    import redis.asyncio

    stream = f"requests-{uuid.uuid4().hex[:8]}"

    async def round_trip() -> tuple[int, int]:
        r = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await r.xgroup_create(stream, "workers", id="$", mkstream=True)
            entry = await r.xadd(stream, {"task": "t1"})
            [[_, [(got_id, _)]]] = await r.xreadgroup("workers", "w1", {stream: ">"}, block=1000)
            assert got_id == entry
            acked = await r.xack(stream, "workers", entry)
            return acked, (await r.xpending(stream, "workers"))["pending"]
        finally:
            await r.aclose()

    assert asyncio.run(round_trip()) == (1, 0)


def test_nothing_is_persisted(redis_server: Redis) -> None:
    import redis

    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert r.config_get("save") == {"save": ""}
        assert r.config_get("appendonly") == {"appendonly": "no"}
    finally:
        r.close()
