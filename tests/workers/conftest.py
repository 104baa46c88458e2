"""Helpers of the worker tests: a workers.yaml for the test's namespace and Redis streams, and
`devscale workers serve` run as a real process against the real API server and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from testbed import kwok
from testbed.net import free_port, wait_until
from testbed.redis import Redis
from tests.conftest import ROOT, Cluster


def worker_config(namespace: str, redis_url: str, tag: str, logs_dir: Path,
                  run_seconds: float = 3, **overrides: Any) -> dict[str, Any]:
    """A workers.yaml whose pods run `run_seconds` on KWOK (the test bed's annotation)."""
    doc: dict[str, Any] = {
        "namespace": namespace,
        "redis": {"url": redis_url, "stream": f"{tag}:requests", "group": "workers",
                  "dead_letter_stream": f"{tag}:dead", "results_stream": f"{tag}:results",
                  "block_seconds": 1, "socket_timeout_seconds": 10, "claim_idle_seconds": 5},
        "worker": {"image": "registry.invalid/worker:1", "command": ["run-task"],
                   "env": {"QUEUE": "builds"},
                   "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                 "limits": {"cpu": "100m", "memory": "64Mi"}},
                   "annotations": {kwok.RUN_SECONDS: f"{run_seconds:g}"}},
        "logs_dir": str(logs_dir),
        "cancel_grace_seconds": 1,
        "shutdown_grace_seconds": 5,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


@dataclass
class Server:
    """One `devscale workers serve` process."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text()

    def healthz(self) -> int:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code
        except httpx.HTTPError:
            return 0

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: self.healthz() == 200, "the workers server ready", timeout=timeout,
                   alive=lambda: None if self.process.poll() is None else self.output())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@dataclass
class Workers:
    """A test's worker system: its config file, its streams, and the servers it starts."""

    cluster: Cluster
    redis: Redis
    kubeconfig: Path
    workdir: Path
    tag: str = field(default_factory=lambda: f"w{uuid.uuid4().hex[:6]}")
    servers: list[Server] = field(default_factory=list)
    config: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    _client: Any = None

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "worker-logs"

    def configure(self, **overrides: Any) -> Path:
        self.settings = worker_config(self.cluster.namespace, self.redis.url, self.tag,
                                      self.logs_dir, **overrides)
        self.config = self.workdir / f"workers-{len(self.servers)}.yaml"
        self.config.write_text(yaml.safe_dump(self.settings, sort_keys=False))
        return self.config

    def client(self) -> Any:
        """The test's one Redis client (closed by stop_all: none is left to the GC)."""
        import redis

        if self._client is None:
            self._client = redis.Redis.from_url(self.redis.url, decode_responses=True)
        return self._client

    @property
    def stream(self) -> str:
        return f"{self.tag}:requests"

    def start(self, consumer: str = "c1", kubeconfig: Path | None = None,
              ready: bool = True, env: dict[str, str] | None = None,
              args: list[str] | None = None) -> Server:
        if self.config is None:
            self.configure()
        port = free_port()
        log_path = self.workdir / f"server-{consumer}-{len(self.servers)}.log"
        full_env = {k: v for k, v in os.environ.items() if k not in ("NAMESPACE", "DEBUG")}
        full_env.update(env or {})
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "devtrip_scale", "workers", "serve", "-c",
                 str(self.config), "--kubeconfig", str(kubeconfig or self.kubeconfig),
                 "--listen", f"127.0.0.1:{port}", "--consumer", consumer, *(args or [])],
                stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=full_env)
        server = Server(process, port, log_path)
        self.servers.append(server)
        if ready:
            server.wait_ready()
        return server

    def submit(self, **fields: Any) -> str:
        return str(self.client().xadd(self.stream, {k: str(v) for k, v in fields.items()}))

    def results(self) -> list[dict[str, str]]:
        return [f for _, f in self.client().xrange(f"{self.tag}:results")]

    def dead(self) -> list[dict[str, str]]:
        return [f for _, f in self.client().xrange(f"{self.tag}:dead")]

    def wait_results(self, n: int, timeout: float = 60) -> list[dict[str, str]]:
        wait_until(lambda: len(self.results()) >= n, f"{n} result(s) on the results stream",
                   timeout=timeout, alive=self._died)
        return self.results()

    def pods(self, task: str | None = None) -> list[Any]:
        from kubernetes import client

        selector = "app.kubernetes.io/managed-by=devscale"
        if task:
            from devtrip_scale.workers.tasks import task_key

            selector += f",devscale.devtrip.io/task={task_key(task)}"
        return list(client.CoreV1Api(self.cluster.api).list_namespaced_pod(
            self.cluster.namespace, label_selector=selector).items)

    def wait_pods(self, n: int, task: str | None = None, timeout: float = 30,
                  phase: str | None = None) -> list[Any]:
        def enough() -> bool:
            return len([p for p in self.pods(task)
                        if phase is None or p.status.phase == phase]) >= n

        wait_until(enough, f"{n} worker pod(s) {phase or ''}", timeout=timeout,
                   alive=self._died)
        return self.pods(task)

    def log_pods(self, pods: list[Any], lines: Callable[[str], list[str]]) -> None:
        for pod in pods:
            self.cluster.pod_log(pod.metadata.name, lines(pod.metadata.name),
                                 container="worker")

    def pending(self) -> int:
        return int(self.client().xpending(self.stream, "workers")["pending"])

    def _died(self) -> str | None:
        for s in self.servers:
            if s.process.poll() is not None and s.process.returncode not in (0, -9):
                return f"server exited {s.process.returncode}:\n{s.output()[-3000:]}"
        return None

    def stop_all(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for s in self.servers:
            if s.process.poll() is None:
                s.process.send_signal(signal.SIGTERM)
        for s in self.servers:
            try:
                s.process.wait(20)
            except subprocess.TimeoutExpired:
                s.process.kill()
                s.process.wait(5)


@pytest.fixture
def workers(cluster: Cluster, redis_server: Redis, admin_kubeconfig: Path,
            tmp_path: Path) -> Iterator[Workers]:
    w = Workers(cluster, redis_server, admin_kubeconfig, tmp_path)
    yield w
    w.stop_all()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> float:
    started = time.monotonic()
    wait_until(check, what, timeout=timeout)
    return time.monotonic() - started
