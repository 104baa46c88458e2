"""The gRPC API's round trip on the real test bed (kube-apiserver + KWOK, Redis 7.0): a
WorkerServer and its API in this process (their own event loop, in a thread), a grpcio client
over TLS on loopback with a bearer token:

1. GetWorkerStatus p50/p99 with `--pods` worker pods in the watch (auth interceptor, status
   grouping, protobuf of every pod), against the baseline measured in the same run, over the
   same channel: the standard health Check (TLS, HTTP/2 and grpcio's own floor, no auth);
2. the same two with no worker pods, to show what the pods cost.

Calls alternate (status, health, status, …) so that both see the same machine.

    python bench/bench_api.py [--quick] [--calls N] [--pods N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import trustme  # noqa: E402
from bed import bed, write_json  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from devtrip_scale.kube.aio import AsyncKube  # noqa: E402
from devtrip_scale.workers.api.server import ApiServer, start_api  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc  # noqa: E402
from devtrip_scale.workers.config import WorkersSettings  # noqa: E402
from devtrip_scale.workers.intake import connect as redis_connect  # noqa: E402
from devtrip_scale.workers.server import WorkerServer  # noqa: E402

T = TypeVar("T")
TOKEN = "bench-" + uuid.uuid4().hex


def settings(namespace: str, redis_url: str, work: Path) -> WorkersSettings:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_pem.write_to_path(str(work / "server.key"))
    (work / "server.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    return WorkersSettings.model_validate({
        "namespace": namespace,
        "redis": {"url": redis_url, "stream": "api:requests", "group": "g",
                  "results_stream": "api:results", "dead_letter_stream": "api:dead",
                  "block_seconds": 1, "socket_timeout_seconds": 10},
        "worker": {"image": "registry.invalid/worker:1",
                   "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                 "limits": {"cpu": "10m", "memory": "8Mi"}},
                   "annotations": {"devscale.test/run-seconds": "3600"}},
        "limits": {"max_workers": 1000, "api_writes_per_second": 1000, "api_write_burst": 1000},
        "logs_dir": str(work / "logs"), "shutdown_grace_seconds": 2,
        "api": {"enabled": True, "tls": {"cert_file": str(work / "server.pem"),
                                         "key_file": str(work / "server.key")}}})


class Served:
    """A WorkerServer and its gRPC API on an event loop in a thread."""

    def __init__(self, cfg: WorkersSettings, kubeconfig: Path) -> None:
        self.cfg, self.kubeconfig = cfg, kubeconfig
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.api: ApiServer | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def __enter__(self) -> Served:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.kube = AsyncKube.connect(str(self.kubeconfig), None, self.cfg.namespace,
                                      writes_per_second=1000, write_burst=1000)
        self.redis = redis_connect(self.cfg.redis)
        self.server = WorkerServer(self.cfg, self.kube, self.redis, consumer="bench",
                                   say=lambda _: None)
        self.task = asyncio.create_task(self.server.run())
        for _ in range(300):
            if self.server.ready:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"server not ready: {self.server.health()}")
        self.api = await start_api(self.server, self.cfg.api, TOKEN, listen="127.0.0.1:0",
                                   say=lambda _: None)

    async def _stop(self) -> None:
        if self.api is not None:
            await self.api.shutdown(1)
        self.server.stop.set()
        await self.task
        await self.kube.aclose()
        await self.redis.aclose()

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(channel: grpc.Channel, calls: int) -> dict[str, dict[str, float]]:
    status = pb_grpc.OttoscalerServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    times: dict[str, list[float]] = {"GetWorkerStatus": [], "health Check (baseline)": []}
    workers = 0
    for _ in range(max(20, calls // 10)):            # warm: TLS session, HTTP/2, caches
        status.GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10)
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    for _ in range(calls):
        t = time.perf_counter()
        answer = status.GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10)
        times["GetWorkerStatus"].append(time.perf_counter() - t)
        workers = sum(len(task.workers) for task in answer.tasks)
        t = time.perf_counter()
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        times["health Check (baseline)"].append(time.perf_counter() - t)
    out = {name: {"p50_ms": pct(v, 0.5) * 1000, "p99_ms": pct(v, 0.99) * 1000,
                  "mean_ms": statistics.fmean(v) * 1000, "calls": len(v)}
           for name, v in times.items()}
    out["GetWorkerStatus"]["workers_in_answer"] = workers
    return out


def run(namespace: str, redis_url: str, kubeconfig: Path, work: Path, calls: int,
        pods: int) -> list[dict[str, Any]]:
    cfg = settings(namespace, redis_url, work)
    rows = []
    with Served(cfg, kubeconfig) as served:
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials((work / "ca.pem").read_bytes()),
            grpc.access_token_call_credentials(TOKEN))
        assert served.api is not None
        channel = grpc.secure_channel(f"localhost:{served.api.port}", creds)
        stub = pb_grpc.OttoscalerServiceStub(channel)
        for n in (0, pods):
            if n:
                stub.ScaleUp(pb.ScaleUpRequest(task_id="bench", pod_count=n), timeout=120)
                deadline = time.monotonic() + 120
                while len(served.server.watch.pods) < n:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{n} pods in the watch")
                    time.sleep(0.1)
            figures = measure(channel, calls)
            rows.append({"pods": n, **figures})
            status, base = figures["GetWorkerStatus"], figures["health Check (baseline)"]
            print(f"{n:>4} pods  GetWorkerStatus p50 {status['p50_ms']:.2f} ms "
                  f"p99 {status['p99_ms']:.2f} ms | health Check p50 {base['p50_ms']:.2f} ms "
                  f"p99 {base['p99_ms']:.2f} ms | status − baseline p50 "
                  f"{status['p50_ms'] - base['p50_ms']:+.2f} ms")
        channel.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few calls, few pods")
    parser.add_argument("--calls", type=int, default=2000, help="round trips per figure")
    parser.add_argument("--pods", type=int, default=100, help="worker pods in the watch")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    calls, pods = (200, 10) if args.quick else (args.calls, args.pods)
    with bed("api") as b:
        rows = run(b.namespace, b.redis_url, b.kubeconfig, b.work, calls, pods)
    write_json(args.json, {"round_trip": rows, "tls": True, "auth": "token"})


if __name__ == "__main__":
    main()
