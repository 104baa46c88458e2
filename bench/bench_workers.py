"""The worker system on the real test bed (kube-apiserver, controller-manager, scheduler, KWOK
nodes, Redis 7.0), with `WorkerServer` in this process:

1. request → all N pods created (p50, p99) for N = 1, 10, 100: from the entry's XADD time (its
   ID) to the last create answered; with the config's default write rate limit (20/s, burst 40)
   and with it lifted (1,000/s);
2. API requests per worker lifecycle: the server (one watch) against the seed's way — create,
   then GET every pod every 2 s until it ends, read its log, delete — on the same workload,
   counted by the same client, as a ratio in one run;
3. requests/s the intake sustains: a backlog of scale_down requests (no pods: intake, task store,
   ack) drained by one server;
4. memory with 1,000 concurrent workers tracked: RSS of this process before and with 1,000
   worker pods in the watch (7 extra KWOK nodes make room for them).

    python bench/bench_workers.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtrip_scale.core.errors import KubeError  # noqa: E402
from devtrip_scale.kube.aio import AsyncKube  # noqa: E402
from devtrip_scale.workers.config import WorkersSettings  # noqa: E402
from devtrip_scale.workers.intake import connect as redis_connect  # noqa: E402
from devtrip_scale.workers.pods import worker_pod  # noqa: E402
from devtrip_scale.workers.server import WorkerServer  # noqa: E402
from devtrip_scale.workers.tasks import classify  # noqa: E402


def settings(namespace: str, redis_url: str, tag: str, logs: Path, run_seconds: float,
             max_workers: int = 100, rate: float = 20, burst: int = 40) -> WorkersSettings:
    return WorkersSettings.model_validate({
        "namespace": namespace,
        "redis": {"url": redis_url, "stream": f"{tag}:requests", "group": "g",
                  "results_stream": f"{tag}:results", "dead_letter_stream": f"{tag}:dead",
                  "block_seconds": 1, "socket_timeout_seconds": 10, "batch": 100},
        "worker": {"image": "registry.invalid/worker:1",
                   "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                 "limits": {"cpu": "10m", "memory": "8Mi"}},
                   "annotations": {"devscale.test/run-seconds": f"{run_seconds:g}"}},
        "limits": {"max_workers": max_workers, "api_writes_per_second": rate,
                   "api_write_burst": burst},
        "logs_dir": str(logs), "shutdown_grace_seconds": 5})


class Running:
    """A WorkerServer in this process, with its own clients."""

    def __init__(self, cfg: WorkersSettings, kubeconfig: Path) -> None:
        self.cfg = cfg
        self.kube = AsyncKube.connect(str(kubeconfig), None, cfg.namespace,
                                      writes_per_second=cfg.limits.api_writes_per_second,
                                      write_burst=cfg.limits.api_write_burst)
        self.redis = redis_connect(cfg.redis)
        self.server = WorkerServer(cfg, self.kube, self.redis, consumer="bench",
                                   say=lambda _: None)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.server.run())
        for _ in range(300):
            if self.server.ready:
                return self
            await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready: {self.server.health()}")

    async def __aexit__(self, *exc: object) -> None:
        self.server.stop.set()
        if self.task is not None:
            await self.task
        await self.kube.aclose()
        await self.redis.aclose()

    async def results(self) -> int:
        return int(await self.redis.xlen(self.cfg.redis.results_stream))

    async def wait_results(self, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while await self.results() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} results: {self.server.errors[-3:]}")
            await asyncio.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def creation_latency(ns: str, redis_url: str, kubeconfig: Path, work: Path,
                           quick: bool) -> list[dict[str, Any]]:
    rows = []
    for label, rate, burst in (("default limit 20/s", 20.0, 40), ("no limit", 1000.0, 1000)):
        for n, repeat in ((1, 20), (10, 10), (100, 5)):
            repeat = max(2, repeat // 4) if quick else repeat
            tag = f"lat{n}-{int(rate)}"
            cfg = settings(ns, redis_url, tag, work / tag, 0, rate=rate, burst=burst)
            async with Running(cfg, kubeconfig) as r:
                await asyncio.sleep(1)          # let the write bucket fill
                for i in range(repeat):
                    await r.redis.xadd(cfg.redis.stream, {"type": "scale_up", "pod_count": n,
                                                          "task_id": f"{tag}-{i}"})
                    await r.wait_results(i + 1)
                    while r.server.capacity.live:   # the last pods gone: no wait for room
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(burst / rate)   # a full bucket for each request
                got = r.server.created_latency
            if label == "no limit":   # the baseline: the same creates, straight from a client
                got_raw = await raw_creates(cfg, kubeconfig, n, repeat)
                rows.append({"n": n, "limit": "client alone", "requests": len(got_raw),
                             "p50": statistics.median(got_raw), "p99": pct(got_raw, 0.99)})
            rows.append({"n": n, "limit": label, "requests": len(got),
                         "p50": statistics.median(got), "p99": pct(got, 0.99)})
            for row in rows[-2 if label == "no limit" else -1:]:
                print(f"request → {n:>3} pods created ({row['limit']}): p50 "
                      f"{row['p50']*1000:.0f} ms, p99 {row['p99']*1000:.0f} ms over "
                      f"{row['requests']} requests", flush=True)
    return rows


async def raw_creates(cfg: WorkersSettings, kubeconfig: Path, n: int, repeat: int
                      ) -> list[float]:
    """N pod creates at once from a bare client, then their deletion: the floor of the above."""
    kube = AsyncKube.connect(str(kubeconfig), None, cfg.namespace, writes_per_second=1000,
                             write_burst=1000)
    took = []
    try:
        for i in range(repeat):
            bodies = [worker_pod(cfg.worker, f"raw-{n}-{i}", j, 0, n, "0-0") for j in range(n)]
            started = time.monotonic()
            await asyncio.gather(*(kube.create_pod(b) for b in bodies))
            took.append(time.monotonic() - started)
            await asyncio.gather(*(kube.delete_pod(b["metadata"]["name"]) for b in bodies))
            await asyncio.sleep(1)
    finally:
        await kube.aclose()
    return took


async def api_per_worker(ns: str, redis_url: str, kubeconfig: Path, work: Path,
                         workers: int, run_seconds: float) -> dict[str, Any]:
    cfg = settings(ns, redis_url, "api", work / "api", run_seconds, rate=1000, burst=1000)
    async with Running(cfg, kubeconfig) as r:
        await r.redis.xadd(cfg.redis.stream, {"type": "scale_up", "pod_count": workers,
                                              "task_id": "watched"})
        await r.wait_results(1)
        watched = dict(r.kube.calls)
    # the seed's way, same workload, same client: GET each pod every 2 s until it ends
    kube = AsyncKube.connect(str(kubeconfig), None, ns, writes_per_second=1000,
                             write_burst=1000)
    try:
        async def one(index: int) -> None:
            body = worker_pod(cfg.worker, "polled", index, 0, workers, "0-0")
            name = body["metadata"]["name"]
            await kube.create_pod(body)
            while True:
                await asyncio.sleep(2)
                r = await kube._call("GET", f"{kube._pods}/{name}", "get", "pods", name)
                if classify(r.json()) is not None:
                    break
            with contextlib.suppress(KubeError):   # as the server: KWOK has no log file here
                await kube.read_log(name, "worker")
            await kube.delete_pod(name)

        await asyncio.gather(*(one(i) for i in range(workers)))
        polled = dict(kube.calls)
    finally:
        await kube.aclose()
    w, p = sum(watched.values()) / workers, sum(polled.values()) / workers
    print(f"API requests per worker ({workers} workers running {run_seconds:g}s): watch "
          f"{w:.2f} {watched}, 2 s poll {p:.2f} {polled}: {p / w:.1f}× fewer", flush=True)
    return {"workers": workers, "run_seconds": run_seconds, "watch": watched, "poll": polled,
            "watch_per_worker": w, "poll_per_worker": p, "ratio": p / w}


async def intake_rate(ns: str, redis_url: str, kubeconfig: Path, work: Path,
                      backlog: int) -> dict[str, Any]:
    cfg = settings(ns, redis_url, "rate", work / "rate", 0)
    async with Running(cfg, kubeconfig) as run:
        async with run.redis.pipeline(transaction=False) as pipe:
            for i in range(backlog):
                pipe.xadd(cfg.redis.stream, {"type": "scale_down", "task_id": f"none-{i}"})
            await pipe.execute()
        started = time.monotonic()
        while True:
            info = await run.redis.xinfo_groups(cfg.redis.stream)
            if info[0]["pending"] == 0 and info[0].get("lag") == 0:
                break
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - started
    rate = backlog / seconds
    print(f"intake: {backlog} requests in {seconds:.2f}s = {rate:.0f} requests/s", flush=True)
    return {"backlog": backlog, "seconds": seconds, "per_second": rate}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def memory(ns: str, redis_url: str, kubeconfig: Path, work: Path,
                 workers: int) -> dict[str, Any]:
    cfg = settings(ns, redis_url, "mem", work / "mem", 600, max_workers=workers,
                   rate=1000, burst=1000)
    async with Running(cfg, kubeconfig) as r:
        await asyncio.sleep(1)
        before = rss_mb()
        for i in range(workers // 100):
            await r.redis.xadd(cfg.redis.stream, {"type": "scale_up", "pod_count": 100,
                                                  "task_id": f"mem-{i}"})
        deadline = time.monotonic() + 600
        while len([p for p in r.server.watch.pods.values()
                   if (p.get("status") or {}).get("phase") == "Running"]) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("1,000 workers running")
            await asyncio.sleep(0.5)
        with_workers = rss_mb()
        tasks = len(asyncio.all_tasks())
        for i in range(workers // 100):
            await r.redis.xadd(cfg.redis.stream, {"type": "scale_down", "task_id": f"mem-{i}"})
        await r.wait_results(workers // 100, timeout=600)
    print(f"memory: RSS {before:.0f} MB idle, {with_workers:.0f} MB with {workers} workers "
          f"running and tracked ({(with_workers - before) * 1024 / workers:.0f} KB each), "
          f"{tasks} asyncio tasks", flush=True)
    return {"workers": workers, "rss_idle_mb": before, "rss_mb": with_workers,
            "kb_per_worker": (with_workers - before) * 1024 / workers, "asyncio_tasks": tasks}


async def run_all(ns: str, redis_url: str, kubeconfig: Path, work: Path,
                  quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["created"] = await creation_latency(ns, redis_url, kubeconfig, work, quick)
    out["api"] = await api_per_worker(ns, redis_url, kubeconfig, work, 10 if quick else 50,
                                      6 if quick else 20)
    out["intake"] = await intake_rate(ns, redis_url, kubeconfig, work, 500 if quick else 5000)
    if not quick:
        out["memory"] = await memory(ns, redis_url, kubeconfig, work, 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small figures, no 1,000 workers")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    from kubernetes import client

    from testbed import kwok
    from testbed.controlplane import ControlPlane
    from testbed.redis import Redis

    work = Path(tempfile.mkdtemp(prefix="devscale-bench-workers-"))
    cp = ControlPlane(work / "cp").start()
    redis = Redis(work / "redis").start()
    try:
        kubeconfig = cp.kubeconfig(work / "kubeconfig")
        for i in range(3, 10):   # room for 1,000 pods (110 each)
            cp.api("POST", "/api/v1/nodes", kwok.Node(f"kwok-node-{i}").manifest())
        from devtrip_scale.kube import connect

        api = connect(str(kubeconfig))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "bench"}})
        api.close()
        figures = asyncio.run(run_all("bench", redis.url, kubeconfig, work, args.quick))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        redis.stop()
        cp.stop()


if __name__ == "__main__":
    main()
