"""Run Debian's redis-server on a free loopback port: with no persistence (the worker system's
streams in most tests), or with AOF (`appendonly yes`, `appendfsync everysec`) for tests that
restart it, optionally as a replica of another (`replicaof`); and a Redis Sentinel
(`redis-server --sentinel`) watching one as its master, able to fail over to a replica."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testbed.net import exit_log, free_port, stop_process, wait_until


def _resp_end(data: bytes, at: int) -> int | None:
    """Where the RESP value starting at `at` ends, None while it is incomplete."""
    line_end = data.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, head = data[at:at + 1], data[at + 1:line_end]
    if kind in (b"+", b"-", b":"):
        return line_end + 2
    if kind == b"$":
        size = int(head)
        end = line_end + 2 + max(size, 0) + (2 if size >= 0 else 0)
        return end if size < 0 or len(data) >= end else None
    if kind == b"*":
        position: int | None = line_end + 2
        for _ in range(max(int(head), 0)):
            position = _resp_end(data, position) if position is not None else None
        return position
    raise ValueError(f"not a RESP reply: {data[at:at + 40]!r}")


@dataclass
class Redis:
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    appendonly: bool = False
    replica_of: Redis | None = None   # started as `replicaof 127.0.0.1 <its port>`

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()   # a restart keeps its port
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "yes" if self.appendonly else "no", "--appendfsync",
                 "everysec", "--dir", str(self.workdir), "--protected-mode", "yes",
                 *(["--replicaof", "127.0.0.1", str(self.replica_of.port)]
                   if self.replica_of is not None else [])],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._pong, "redis-server", timeout=30,
                   alive=lambda: exit_log(self.process, self.log_path))
        if self.replica_of is not None:
            wait_until(self._in_sync, f"replica of :{self.replica_of.port} in sync", timeout=30,
                       alive=lambda: exit_log(self.process, self.log_path))
        return self

    def command(self, *words: str) -> bytes:
        """One command in RESP on a fresh connection, its raw reply (for the test bed's own
        checks, without a client library)."""
        request = b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(request)
            reply = b""
            while _resp_end(reply, 0) is None:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply

    def role(self) -> str:
        """`master` or `slave`, from INFO replication."""
        found = re.search(rb"role:(\w+)", self.command("INFO", "replication"))
        return found.group(1).decode() if found else "?"

    def _pong(self) -> bool:
        return self.command("PING").startswith(b"+PONG")

    def _in_sync(self) -> bool:
        return b"master_link_status:up" in self.command("INFO", "replication")

    def stop(self) -> None:
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last fsync, no goodbye to its replicas."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Sentinel:
    """A Redis Sentinel on a free loopback port watching `master` as `service` (quorum 1): it
    calls the master down after `down_after_ms` without an answer and then promotes one of its
    replicas (at most one failover per `failover_timeout_ms`)."""

    workdir: Path
    master: Redis
    service: str = "devscale"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    down_after_ms: int = 2000
    failover_timeout_ms: int = 180000     # Sentinel's default

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> Sentinel:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        conf = self.workdir / "sentinel.conf"       # Sentinel rewrites its own config
        conf.write_text(f"bind 127.0.0.1\nport {self.port}\ndir {self.workdir}\n"
                        f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
                        f"sentinel down-after-milliseconds {self.service} "
                        f"{self.down_after_ms}\n"
                        f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n")
        log_path = self.workdir / "sentinel.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_until(self._knows_master, "redis sentinel", timeout=30,
                   alive=lambda: exit_log(self.process, log_path))
        return self

    def master_port(self) -> int:
        """The port of the master Sentinel names now (it changes on a failover)."""
        reply = Redis(self.workdir, port=self.port).command(
            "SENTINEL", "get-master-addr-by-name", self.service)
        ports = re.findall(rb"\r\n(\d+)\r\n", reply)
        return int(ports[-1]) if ports else 0

    def replicas_known(self) -> int:
        """How many replicas of the master Sentinel has found (through the master's INFO)."""
        reply = Redis(self.workdir, port=self.port).command("SENTINEL", "replicas",
                                                             self.service)
        return reply.count(b"\r\nip\r\n")

    def _knows_master(self) -> bool:
        return self.master_port() == self.master.port

    def stop(self) -> None:
        stop_process(self.process)
