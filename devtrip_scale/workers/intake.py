"""The Redis Stream intake: a consumer group, at-least-once.

Order of reads: this consumer's own pending entries first (ID 0, what a crash left unacked),
then new ones (`>`); every `claim_idle/2` seconds entries another consumer left pending longer
than `claim_idle` are taken over (XAUTOCLAIM). Each entry's delivery count comes from XPENDING:
past `max_deliveries` it goes to the dead-letter stream. Entries are acked (XACK) only by the
caller, once their effect is durable. Entries held in memory longer (waiting for the worker
cap) are re-claimed by their holder now and then (XCLAIM JUSTID) so that no one steals them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ResponseError

from devtrip_scale.workers.config import SENTINEL_SCHEME, RedisModel, sentinel_parts


@dataclass(frozen=True)
class Entry:
    id: str
    fields: Mapping[str, str] | None      # None: the entry was deleted from the stream
    deliveries: int = 1


POOL = 256  # connections: many concurrent requests (and the build streams' blocking reads)
            # share them instead of each opening one


def connect(settings: RedisModel, password: str | None = None) -> Redis:
    """A redis.asyncio client whose socket timeout is well above the blocking read's time, on a
    bounded pool (a request waits for a free connection rather than opening its own)."""
    if settings.url.startswith(f"{SENTINEL_SCHEME}://"):
        from redis.asyncio.sentinel import Sentinel

        parts = sentinel_parts(settings.url)
        sentinel = Sentinel(list(parts.sentinels), socket_timeout=5, socket_connect_timeout=5,
                            sentinel_kwargs={"password": parts.password} if parts.password
                            else None)
        # the master as Sentinel names it now, found again after a failover
        master: Redis = sentinel.master_for(
            parts.service, db=parts.db, password=password or parts.password,
            decode_responses=True, max_connections=POOL,
            socket_timeout=settings.socket_timeout_seconds, socket_connect_timeout=5,
            health_check_interval=30)
        return master
    pool = BlockingConnectionPool.from_url(
        settings.url, password=password, decode_responses=True, max_connections=POOL,
        timeout=settings.socket_timeout_seconds, socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=5, health_check_interval=30)
    return Redis.from_pool(pool)   # owns the pool: aclose() closes its connections


def connect_sync(settings: RedisModel, password: str | None = None) -> Any:
    """A blocking redis-py client (the CLI's submit and status), plain URL or Sentinel."""
    import redis

    if settings.url.startswith(f"{SENTINEL_SCHEME}://"):
        from redis.sentinel import Sentinel

        parts = sentinel_parts(settings.url)
        sentinel = Sentinel(list(parts.sentinels), socket_timeout=5, socket_connect_timeout=5,
                            sentinel_kwargs={"password": parts.password} if parts.password
                            else None)
        return sentinel.master_for(parts.service, db=parts.db,
                                   password=password or parts.password,
                                   decode_responses=True, socket_timeout=10,
                                   socket_connect_timeout=5)
    return redis.Redis.from_url(settings.url, password=password, decode_responses=True,
                                socket_timeout=10, socket_connect_timeout=5)


class Intake:
    def __init__(self, redis: Redis, settings: RedisModel, consumer: str) -> None:
        self.redis = redis
        self.cfg = settings
        self.consumer = consumer
        self._cursor = "0"          # own pending entries first; ">" once they are read
        self._last_claim = 0.0

    async def ensure_group(self) -> None:
        """Create the group at `$` (new entries only), with the stream if missing."""
        try:
            await self.redis.xgroup_create(self.cfg.stream, self.cfg.group, id="$",
                                           mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def restart(self) -> None:
        """After a reconnect: read the own pending list again before new entries."""
        self._cursor = "0"

    async def read(self, count: int) -> list[Entry]:
        """The next entries for this consumer: pending, reclaimed, or new (blocking)."""
        if self._cursor != ">":
            got = await self._read_group(self._cursor, count, block=None)
            if got:
                self._cursor = got[-1][0]
                return await self._with_counts(got)
            self._cursor = ">"
        if time.monotonic() - self._last_claim >= self.cfg.claim_idle_seconds / 2:
            self._last_claim = time.monotonic()
            claimed = await self.reclaim(count)
            if claimed:
                return claimed
        got = await self._read_group(">", count, block=int(self.cfg.block_seconds * 1000))
        return [Entry(i, f, 1) for i, f in got]

    async def _read_group(self, cursor: str, count: int, block: int | None
                          ) -> list[tuple[str, dict[str, str] | None]]:
        reply: Any = await self.redis.xreadgroup(self.cfg.group, self.consumer,
                                                 {self.cfg.stream: cursor}, count=count,
                                                 block=block)
        if not reply:
            return []
        entries = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
        return [(str(i), dict(f) if f else None) for i, f in entries]

    async def reclaim(self, count: int) -> list[Entry]:
        """Entries other consumers left pending longer than `claim_idle_seconds`, now ours."""
        reply: Any = await self.redis.xautoclaim(
            self.cfg.stream, self.cfg.group, self.consumer,
            min_idle_time=int(self.cfg.claim_idle_seconds * 1000), start_id="0-0", count=count)
        got = [(str(i), dict(f) if f else None) for i, f in reply[1]]
        # XAUTOCLAIM (7.0) drops entries deleted from the stream from the PEL and lists them
        return await self._with_counts(got)

    async def _with_counts(self, got: list[tuple[str, dict[str, str] | None]]) -> list[Entry]:
        if not got:
            return []
        pending: Any = await self.redis.xpending_range(
            self.cfg.stream, self.cfg.group, min=got[0][0], max=got[-1][0], count=len(got) * 4,
            consumername=self.consumer)
        counts = {str(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [Entry(i, f, counts.get(i, 1)) for i, f in got]

    async def ack(self, entry_id: str) -> None:
        await self.redis.xack(self.cfg.stream, self.cfg.group, entry_id)

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move an entry to the dead-letter stream with the reason, and ack it: one MULTI."""
        fields: dict[Any, Any] = {"entry_id": entry.id, "stream": self.cfg.stream, "reason": reason,
                  "deliveries": str(entry.deliveries), "consumer": self.consumer,
                  **{f"field.{k}": v for k, v in (entry.fields or {}).items()}}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.cfg.dead_letter_stream, fields, maxlen=self.cfg.results_maxlen,
                      approximate=True)
            pipe.xack(self.cfg.stream, self.cfg.group, entry.id)
            await pipe.execute()

    async def keep(self, entry_ids: Iterable[str]) -> None:
        """Reset the idle time of entries this consumer still works on (no delivery counted)."""
        ids: list[Any] = list(entry_ids)
        if ids:
            await self.redis.xclaim(self.cfg.stream, self.cfg.group, self.consumer, 0, ids,
                                    justid=True)

    async def pending(self) -> int:
        """How many entries the group has delivered and not acked."""
        info: Any = await self.redis.xpending(self.cfg.stream, self.cfg.group)
        return int(info["pending"])
