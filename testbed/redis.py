"""Run Debian's redis-server on a free loopback port: with no persistence (the worker system's
streams in most tests), or with AOF (`appendonly yes`, `appendfsync everysec`) for tests that
restart it; and a Redis Sentinel (`redis-server --sentinel`) watching one as its master."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testbed.net import exit_log, free_port, stop_process, wait_until


@dataclass
class Redis:
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    appendonly: bool = False

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
                 "everysec", "--dir", str(self.workdir), "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._pong, "redis-server", timeout=30,
                   alive=lambda: exit_log(self.process, self.log_path))
        return self

    def _pong(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Sentinel:
    """A Redis Sentinel on a free loopback port watching `master` as `service` (quorum 1)."""

    workdir: Path
    master: Redis
    service: str = "devscale"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

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
                        f"sentinel down-after-milliseconds {self.service} 2000\n")
        log_path = self.workdir / "sentinel.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_until(self._knows_master, "redis sentinel", timeout=30,
                   alive=lambda: exit_log(self.process, log_path))
        return self

    def _knows_master(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            name = self.service.encode()
            s.sendall(b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n"
                      b"$%d\r\n%s\r\n" % (len(name), name))
            return str(self.master.port).encode() in s.recv(256)

    def stop(self) -> None:
        stop_process(self.process)
