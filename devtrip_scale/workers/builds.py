"""Pipeline builds in Redis, so that a build belongs to the service and not to a process: the
pipeline as submitted, each stage's status, the build's result, its lease, its cancel request,
and its progress and log journals as Redis Streams.

Keys under `<prefix>:build:<id>`: a hash (the pipeline's text, the build's state and message,
`stage:<name>` = a stage's status as JSON, the sequence counters), `…:progress` and `…:logs`
(streams whose entry ids are `0-<sequence>`, so a resume from a sequence is an XREAD from
there), `…:lease` (the owner's token, with a TTL) and `…:cancel` (why someone asked to cancel).
`<prefix>:builds:running` is the set of builds not yet ended (what replicas adopt from) and
`<prefix>:builds:ended` a sorted set by end time (what keep_builds trims).

Guarantees: a build id is created once (a Lua script: the hash and the lease in one step, so the
same id submitted to two replicas at once makes one build); every write of a build's state or
journals checks the writer's lease token in the same script (a replica that lost its lease
writes nothing); a build ends once (the end script moves it from running to ended and says
whether this call did it); readers follow a journal with XREAD from the last sequence they saw
and end at its end marker. Log lines are kept at most `lines_per_pod` per pod; the lines over it
are counted and said as one line when the logs end, never dropped silently. An ended build's
keys expire `keep_seconds` later; past `keep_builds` the oldest ended builds are deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.progress import (
    BuildState,
    BuildStatus,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
)

NOT_OWNER = -1           # a script's answer when the caller's lease token is not the lease's

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS: hash, progress, lease; ARGV: token, event, end (0/1), then field/value pairs
_APPEND = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[2], 'end', '1')
else
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[2])
end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
return seq
"""

# KEYS: hash, logs, lease; ARGV: token, cap, then pod/ordinal/line triples
_LOG = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local cap = tonumber(ARGV[2])
local added = 0
for i = 3, #ARGV, 3 do
  local field = 'lines:' .. ARGV[i]
  local ordinal = tonumber(ARGV[i + 1])
  local seen = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if ordinal > seen then
    redis.call('HSET', KEYS[1], field, ordinal)
    if ordinal <= cap then
      local seq = redis.call('HINCRBY', KEYS[1], 'logseq', 1)
      redis.call('XADD', KEYS[2], '0-' .. seq, 'l', ARGV[i + 2])
      added = added + 1
    end
  end
end
return added
"""

# KEYS: hash, logs, lease; ARGV: token, then notice lines (already JSON)
_LOG_END = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV do
  local seq = redis.call('HINCRBY', KEYS[1], 'logseq', 1)
  redis.call('XADD', KEYS[2], '0-' .. seq, 'l', ARGV[i])
end
local seq = redis.call('HINCRBY', KEYS[1], 'logseq', 1)
redis.call('XADD', KEYS[2], '0-' .. seq, 'end', '1')
return seq
"""

# KEYS: hash, progress, logs, lease, cancel, running, ended, unreported; ARGV: token, id, now,
# keep ms
_FINISH = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return -1 end
if redis.call('SREM', KEYS[6], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[8], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, false} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('GET', KEYS[2])}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def stage_doc(s: StageStatus) -> str:
    d = asdict(s)
    d["state"] = s.state.value
    d["needs"] = list(s.needs)
    return json.dumps(d, separators=(",", ":"))


def stage_of(text: str) -> StageStatus:
    d = json.loads(text)
    d["state"] = StageState(d["state"])
    d["needs"] = tuple(d["needs"])
    return StageStatus(**d)


def event_doc(e: ProgressEvent) -> str:
    return json.dumps({"t": e.time, "b": e.build_id, "bs": e.build_state.value, "s": e.stage,
                       "ss": e.stage_state.value if e.stage_state else "", "a": e.attempt,
                       "w": e.worker_index, "p": e.pod, "m": e.message,
                       "all": [stage_doc(s) for s in e.stages]}, separators=(",", ":"))


def event_of(text: str) -> ProgressEvent:
    d = json.loads(text)
    return ProgressEvent(d["t"], d["b"], BuildState(d["bs"]), d["s"],
                         StageState(d["ss"]) if d["ss"] else None, d["a"], d["w"], d["p"],
                         d["m"], tuple(stage_of(s) for s in d["all"]))


def line_doc(line: LogLine) -> str:
    return json.dumps(asdict(line), separators=(",", ":"))


def line_of(text: str) -> LogLine:
    return LogLine(**json.loads(text))


class BuildStore:
    """The builds of one devscale installation (one Redis prefix); see the module docstring."""

    def __init__(self, redis: Redis, prefix: str, *, keep_builds: int = 100,
                 keep_seconds: float = 3600.0, lease_seconds: float = 10.0,
                 lines_per_pod: int = 10_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keep_builds = keep_builds
        self.keep_seconds = keep_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.lines_per_pod = lines_per_pod
        self.running_key = f"{prefix}:builds:running"
        self.ended_key = f"{prefix}:builds:ended"
        self.unreported_key = f"{prefix}:builds:unreported"
        self._create = redis.register_script(_CREATE)
        self._append = redis.register_script(_APPEND)
        self._log = redis.register_script(_LOG)
        self._log_end = redis.register_script(_LOG_END)
        self._finish = redis.register_script(_FINISH)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def key(self, build_id: str, part: str = "") -> str:
        return f"{self.prefix}:build:{build_id}" + (f":{part}" if part else "")

    # ------------------------------------------------------------ creating, owning

    async def create(self, build_id: str, token: str, *, pipeline_text: str, file_name: str,
                     pipeline: str, stages: Sequence[StageStatus], now: float) -> bool:
        """Create the build and take its lease, in one step; False when the id exists."""
        fields: dict[str, str] = {
            "text": pipeline_text, "file": file_name, "pipeline": pipeline,
            "state": BuildState.RUNNING.value, "started": repr(now), "message": "",
            "order": json.dumps([s.name for s in stages]), "seq": "0", "logseq": "0"}
        for s in stages:
            fields[f"stage:{s.name}"] = stage_doc(s)
        args: list[str | int] = [build_id, token, self.lease_ms]
        for k, v in fields.items():
            args += [k, v]
        keys = [self.key(build_id), self.running_key, self.key(build_id, "lease")]
        return bool(await self._create(keys=keys, args=args))

    async def take(self, build_id: str, token: str) -> bool:
        """Take the lease of a build nobody holds (SET NX PX)."""
        return bool(await self.redis.set(self.key(build_id, "lease"), token, nx=True,
                                         px=self.lease_ms))

    async def renew(self, build_ids: Sequence[str], token: str
                    ) -> dict[str, tuple[bool, str | None]]:
        """Renew the leases held with `token`: per build (still ours, a cancel request's
        reason or None)."""
        out: dict[str, tuple[bool, str | None]] = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in build_ids:
                await self._renew(keys=[self.key(b, "lease"), self.key(b, "cancel")],
                                  args=[token, self.lease_ms], client=pipe)
            answers = await pipe.execute()
        for b, (ours, why) in zip(build_ids, answers, strict=True):
            out[b] = (bool(ours), why if isinstance(why, str) else None)
        return out

    async def release(self, build_id: str, token: str) -> bool:
        return bool(await self._release(keys=[self.key(build_id, "lease")], args=[token]))

    async def running(self) -> list[str]:
        members: set[str] = await self.redis.smembers(self.running_key)  # type: ignore[assignment]
        return sorted(members)

    async def owner(self, build_id: str) -> str | None:
        value = await self.redis.get(self.key(build_id, "lease"))
        return None if value is None else str(value)

    async def request_cancel(self, build_id: str, why: str) -> None:
        await self.redis.set(self.key(build_id, "cancel"), why,
                             px=int(max(self.keep_seconds, 60) * 1000))

    async def cancel_requested(self, build_id: str) -> str | None:
        value = await self.redis.get(self.key(build_id, "cancel"))
        return None if value is None else str(value)

    # ------------------------------------------------------------ writing (the owner)

    async def append(self, build_id: str, token: str, event: ProgressEvent,
                     changes: dict[str, str], *, end: bool = False) -> int:
        """Add a progress event and write `changes` to the build's hash; its sequence, or
        NOT_OWNER."""
        args: list[str] = [token, event_doc(event), "1" if end else "0"]
        for k, v in changes.items():
            args += [k, v]
        keys = [self.key(build_id), self.key(build_id, "progress"), self.key(build_id, "lease")]
        return int(await self._append(keys=keys, args=args))

    async def append_many(self, build_id: str, token: str,
                          items: Sequence[tuple[ProgressEvent, dict[str, str], bool]]
                          ) -> list[int]:
        """`append` for several events in one round trip (MULTI/EXEC of the same script, in
        order: all written or none, so a retry repeats nothing); each one's sequence or
        NOT_OWNER."""
        keys = [self.key(build_id), self.key(build_id, "progress"), self.key(build_id, "lease")]
        async with self.redis.pipeline(transaction=True) as pipe:
            for event, changes, end in items:
                args: list[str] = [token, event_doc(event), "1" if end else "0"]
                for k, v in changes.items():
                    args += [k, v]
                await self._append(keys=keys, args=args, client=pipe)
            return [int(x) for x in await pipe.execute()]

    async def add_lines(self, build_id: str, token: str,
                        lines: Sequence[tuple[int, LogLine]]) -> int:
        """Add log lines, each with its ordinal in its pod's log (1, 2, …): a line whose ordinal
        was stored already (by an earlier owner) is skipped, one past the cap counted. The
        lines added, or NOT_OWNER."""
        args: list[str | int] = [token, self.lines_per_pod]
        for ordinal, line in lines:
            args += [line.pod, ordinal, line_doc(line)]
        keys = [self.key(build_id), self.key(build_id, "logs"), self.key(build_id, "lease")]
        return int(await self._log(keys=keys, args=args))

    async def end_logs(self, build_id: str, token: str) -> int:
        """The log journal's end: one line per pod that wrote more than the cap (how many
        lines were not kept), then the end marker. NOT_OWNER or the last sequence."""
        raw = await self.raw(build_id)
        notices = []
        for k, v in sorted(raw.items()):
            if k.startswith("lines:") and int(v) > self.lines_per_pod:
                pod = k[len("lines:"):]
                over = int(v) - self.lines_per_pod
                notices.append(line_doc(LogLine(
                    time.time(), f"[devscale] {over} more line(s) of pod {pod} not kept: over "
                    f"the limit of {self.lines_per_pod} per pod (pipelines.log_lines_per_pod)",
                    pod, build_id=build_id, container="devscale")))
        keys = [self.key(build_id), self.key(build_id, "logs"), self.key(build_id, "lease")]
        return int(await self._log_end(keys=keys, args=[token, *notices]))

    async def note_silent(self, build_id: str, notes: Sequence[str]) -> None:
        """The build's pods that wrote no log line, each with the reason the API gave: kept
        with the build, so that any replica can say why its log is empty."""
        if notes:
            await self.redis.hset(self.key(build_id), "silent", json.dumps(list(notes)))

    async def silent(self, build_id: str) -> tuple[str, ...]:
        """What note_silent kept (nothing: every pod wrote, or the log has not ended)."""
        text = await self.redis.hget(self.key(build_id), "silent")
        return tuple(json.loads(text)) if text else ()

    async def finish(self, build_id: str, token: str) -> int:
        """The build ended: out of the running set, into the ended one and the unreported one,
        its keys to expire keep_seconds from now, the lease and the cancel request gone. 1 when
        this call ended it, 0 when it had ended already, NOT_OWNER."""
        keys = [self.key(build_id), self.key(build_id, "progress"), self.key(build_id, "logs"),
                self.key(build_id, "lease"), self.key(build_id, "cancel"), self.running_key,
                self.ended_key, self.unreported_key]
        done = int(await self._finish(keys=keys, args=[
            token, build_id, repr(time.time()), max(1000, int(self.keep_seconds * 1000))]))
        if done == 1:
            await self.trim()
        return done

    async def claim_report(self, build_id: str, token: str, seconds: float = 90) -> bool:
        """The one replica that reports an ended build now (a claim that expires, so that a
        reporter that died is replaced)."""
        return bool(await self.redis.set(self.key(build_id, "reporting"), token, nx=True,
                                         ex=int(seconds)))

    async def reported(self, build_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(self.unreported_key, build_id)
            pipe.expire(self.key(build_id, "reporting"), max(1, int(self.keep_seconds)))
            await pipe.execute()

    async def unreported(self) -> list[str]:
        members: set[str] = await self.redis.smembers(  # type: ignore[assignment]
            self.unreported_key)
        return sorted(members)

    async def trim(self) -> None:
        """Drop ended builds past keep_builds (oldest first) and the index of expired ones."""
        await self.redis.zremrangebyscore(self.ended_key, "-inf",
                                          time.time() - self.keep_seconds)
        extra = await self.redis.zcard(self.ended_key) - self.keep_builds
        if extra > 0:
            old: list[str] = await self.redis.zrange(  # type: ignore[assignment]
                self.ended_key, 0, extra - 1)
            async with self.redis.pipeline(transaction=True) as pipe:
                for b in old:
                    pipe.delete(self.key(b), self.key(b, "progress"), self.key(b, "logs"))
                pipe.zrem(self.ended_key, *old)
                await pipe.execute()

    # ------------------------------------------------------------ reading (anyone)

    async def exists(self, build_id: str) -> bool:
        return bool(await self.redis.exists(self.key(build_id)))

    async def wait_exists(self, build_id: str, seconds: float) -> bool:
        """Whether the build exists, waiting up to `seconds` for one being created."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if await self.exists(build_id):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def raw(self, build_id: str) -> dict[str, str]:
        raw: dict[str, str] = await self.redis.hgetall(  # type: ignore[assignment]
            self.key(build_id))
        return raw

    async def status(self, build_id: str) -> BuildStatus | None:
        raw = await self.raw(build_id)
        return status_of(build_id, raw) if raw else None

    async def progress(self, build_id: str, after: int = 0, *, follow: bool = True,
                       stop: asyncio.Event | None = None
                       ) -> AsyncGenerator[tuple[int, ProgressEvent] | Missed, None]:
        """The progress events after sequence `after`, to the journal's end (with `follow`,
        waiting for new ones; without, what there is now). Ends early when `stop` is set."""
        async for seq, fields in self._read(self.key(build_id, "progress"), build_id, after,
                                            follow, stop):
            if isinstance(fields, Missed):
                yield fields
            elif "e" in fields:
                yield seq, event_of(fields["e"])

    async def logs(self, build_id: str, after: int = 0, *, follow: bool = True,
                   stop: asyncio.Event | None = None
                   ) -> AsyncGenerator[tuple[int, LogLine] | Missed, None]:
        async for seq, fields in self._read(self.key(build_id, "logs"), build_id, after,
                                            follow, stop):
            if isinstance(fields, Missed):
                yield fields
            elif "l" in fields:
                yield seq, line_of(fields["l"])

    async def _read(self, stream: str, build_id: str, after: int, follow: bool,
                    stop: asyncio.Event | None
                    ) -> AsyncGenerator[tuple[int, dict[str, str] | Missed], None]:
        last = after
        while stop is None or not stop.is_set():
            got: Any = await self.redis.xread({stream: f"0-{last}"}, count=500,
                                              block=1000 if follow else None)
            entries = got[0][1] if got else []
            if not entries:
                if not follow or not await self.exists(build_id):
                    return              # what there is now, or the build is gone (expired)
                continue
            for entry_id, fields in entries:
                seq = int(str(entry_id).split("-")[1])
                if seq > last + 1:
                    yield seq, Missed(last + 1, seq - 1)
                last = seq
                yield seq, fields
                if "end" in fields:
                    return


def status_of(build_id: str, raw: dict[str, str]) -> BuildStatus:
    order: list[str] = json.loads(raw.get("order", "[]"))
    stages = tuple(stage_of(raw[f"stage:{n}"]) for n in order if f"stage:{n}" in raw)
    finished = raw.get("finished")
    return BuildStatus(build_id, raw.get("pipeline", ""), BuildState(raw.get("state", "running")),
                       stages, float(raw.get("started", "0")),
                       float(finished) if finished else None, int(raw.get("seq", "0")),
                       raw.get("message", ""))
