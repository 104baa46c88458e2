"""Redis in the test bed (Debian's redis-server, no persistence): a stream round-trip with a
consumer group, as the worker system will use it, with the blocking and the asyncio client; and
a master with AOF, its replica and a Sentinel: Sentinel promotes the replica when the master is
SIGKILLed, and a write the master acknowledged but had not sent its replica is lost by that
failover (replication is asynchronous; WAIT tells the writer, it does not undo the write)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from testbed.net import wait_until
from testbed.redis import Redis, Sentinel

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


def test_sentinel_promotes_the_replica_and_an_unreplicated_write_is_lost(tmp_path: Path) -> None:
    import redis

    master = Redis(tmp_path / "master", appendonly=True).start()
    replica = Redis(tmp_path / "replica", appendonly=True, replica_of=master).start()
    sentinel = Sentinel(tmp_path / "sentinel", master, down_after_ms=1000,
                        failover_timeout_ms=3000).start()
    assert replica.process is not None
    try:
        wait_until(lambda: sentinel.replicas_known() == 1, "Sentinel knows the replica")
        assert (master.role(), replica.role()) == ("master", "slave")
        with redis.Redis(port=master.port, decode_responses=True) as r:
            r.set("kept", "1")
            assert r.execute_command("WAIT", 1, 2000) == 1      # on the replica: kept
            # the replica's link breaks (as in a partition): what the master writes now stays
            # in its backlog (a write sent already would wait in the replica's socket buffer
            # and survive: a SIGSTOPped replica alone loses nothing)
            replica.process.send_signal(signal.SIGSTOP)
            try:
                assert r.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
                assert r.set("acknowledged", "1")               # the master says OK …
                assert r.execute_command("WAIT", 1, 200) == 0   # … on no replica
            finally:
                master.kill()
                replica.process.send_signal(signal.SIGCONT)
        killed = time.monotonic()
        wait_until(lambda: sentinel.master_port() == replica.port,
                   "Sentinel promotes the replica", timeout=30)
        assert time.monotonic() - killed < 10
        assert replica.role() == "master"
        with redis.Redis(port=replica.port, decode_responses=True) as r:
            assert r.get("kept") == "1"
            assert r.get("acknowledged") is None      # acknowledged, then lost by the failover
            assert r.set("after", "1")                # the new master takes writes
    finally:
        sentinel.stop()
        replica.stop()
        master.stop()
