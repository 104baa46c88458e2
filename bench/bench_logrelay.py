"""The live log relay on the real test bed (kube-apiserver, scheduler, KWOK serving pods/log),
against the naive way measured in the same run: R readers of each of P running pods, lines
written to the pods' KWOK log files, each reader timed from the write to having the line.

* relay: one LogRelay fed by one pod watch; every reader is a `task_lines(follow=True)` — one
  upstream pods/log follow per pod, however many read it;
* naive: every reader opens its own pods/log?follow (AsyncKube.follow_log) — P×R streams.

Reported per way: delivery latency p50/p99/max, pods/log requests, upstream streams open, and
the ratio naive/relay of the streams. Line order is checked per reader in both ways.

    python bench/bench_logrelay.py [--pods 10] [--readers 10] [--lines 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bed import bed, write_json  # noqa: E402

from devtrip_scale.kube.aio import AsyncKube  # noqa: E402
from devtrip_scale.workers import SELECTOR  # noqa: E402
from devtrip_scale.workers.config import WorkerModel  # noqa: E402
from devtrip_scale.workers.logrelay import LogRelay, parse_line  # noqa: E402
from devtrip_scale.workers.pods import worker_pod  # noqa: E402
from devtrip_scale.workers.progress import LogLine  # noqa: E402
from devtrip_scale.workers.watch import PodWatch  # noqa: E402
from testbed import kwok  # noqa: E402

TEMPLATE = WorkerModel.model_validate({
    "image": "w:1", "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                  "limits": {"cpu": "10m", "memory": "8Mi"}},
    "annotations": {kwok.RUN_SECONDS: "3600"}})


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Deliveries:
    """When each reader got each line (monotonic), to time against the writes."""

    def __init__(self) -> None:
        self.got: dict[tuple[str, int], list[tuple[float, str]]] = {}

    def add(self, pod: str, reader: int, text: str) -> None:
        self.got.setdefault((pod, reader), []).append((time.monotonic(), text))


async def write_lines(paths: dict[str, Path], lines: int, written: dict[str, float],
                      pause: float) -> None:
    for i in range(lines):
        for pod, path in paths.items():
            text = f"{pod} line {i}"
            written[text] = time.monotonic()
            kwok.write_log(path, [text])
        await asyncio.sleep(pause)


def summary(way: str, d: Deliveries, written: dict[str, float], pods: int, readers: int,
            lines: int, requests: int, streams: int) -> dict[str, Any]:
    latencies = [at - written[text] for got in d.got.values() for at, text in got]
    complete = len(d.got) == pods * readers and all(
        [t for _, t in got] == [f"{pod} line {i}" for i in range(lines)]
        for (pod, _), got in d.got.items())
    out = {"way": way, "readers": pods * readers, "lines_each": lines, "complete": complete,
           "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
           "latency_p99_ms": round(1000 * pct(latencies, 0.99), 1),
           "latency_max_ms": round(1000 * max(latencies), 1),
           "pods_log_requests": requests, "upstream_streams": streams}
    print(f"{way:>6}: {out['readers']} readers, every line in order: {complete}; latency "
          f"p50 {out['latency_p50_ms']} ms, p99 {out['latency_p99_ms']} ms, max "
          f"{out['latency_max_ms']} ms; pods/log requests {requests}, streams open {streams}")
    return out


async def relay_way(kube: AsyncKube, names: list[str], paths: dict[str, Path], readers: int,
                    lines: int) -> dict[str, Any]:
    relay = LogRelay(kube)
    watch = PodWatch(kube, SELECTOR, relay.on_pod)
    watching = asyncio.create_task(watch.run())
    await watch.synced.wait()
    before = kube.calls["get pods/log"]
    d = Deliveries()
    written: dict[str, float] = {}

    async def read(name: str, r: int) -> None:
        labels = watch.pods[name]["metadata"]["labels"]
        async for item in relay.task_lines(labels["devscale.devtrip.io/task"], name,
                                           follow=True):
            if isinstance(item, LogLine):
                d.add(name, r, item.text)

    tasks = [asyncio.create_task(read(n, r)) for n in names for r in range(readers)]
    while relay.follows < len(names):
        await asyncio.sleep(0.05)
    say(f"relay: {relay.follows} follows for {len(tasks)} readers")
    await asyncio.sleep(0.5)
    await write_lines(paths, lines, written, 0.05)
    await until_complete(d, len(names) * readers, lines)
    streams = relay.follows
    out = summary("relay", d, written, len(names), readers, lines,
                  kube.calls["get pods/log"] - before, streams)
    for t in [*tasks, watching]:
        t.cancel()
    await asyncio.gather(*tasks, watching, return_exceptions=True)
    await relay.aclose()
    return out


async def naive_way(kube: AsyncKube, names: list[str], paths: dict[str, Path], readers: int,
                    lines: int, skip: dict[str, int]) -> dict[str, Any]:
    before = kube.calls["get pods/log"]
    d = Deliveries()
    written: dict[str, float] = {}
    opened = 0

    async def read(name: str, r: int) -> None:
        nonlocal opened
        seen = 0
        opened += 1
        async for raw in kube.follow_log(name, "worker"):
            seen += 1
            if seen > skip[name]:        # the lines of the relay's round
                d.add(name, r, parse_line(raw)[1])

    tasks = [asyncio.create_task(read(n, r)) for n in names for r in range(readers)]
    await asyncio.sleep(2.0)
    await write_lines(paths, lines, written, 0.05)
    await until_complete(d, len(names) * readers, lines)
    out = summary("naive", d, written, len(names), readers, lines,
                  kube.calls["get pods/log"] - before, opened)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


async def until_complete(d: Deliveries, readers: int, lines: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (len(d.got) == readers and all(len(g) >= lines for g in d.got.values())):
        if time.monotonic() > deadline:
            raise RuntimeError("not every reader got every line in time")
        await asyncio.sleep(0.05)


async def run(namespace: str, kubeconfig: Path, logs_dir: Path, api: Any, pods: int,
              readers: int, lines: int) -> dict[str, Any]:
    from kubernetes import client

    kube = AsyncKube.connect(str(kubeconfig), None, namespace)
    try:
        names = []
        for i in range(pods):
            body = worker_pod(TEMPLATE, f"bench-{i}", 0, 0, 1, "0-0")
            await kube.create_pod(body)
            names.append(body["metadata"]["name"])
        core = client.CoreV1Api(api)
        paths = {}
        for name in names:
            while True:
                pod = core.read_namespaced_pod(name, namespace)
                if pod.status.phase == "Running":
                    break
                await asyncio.sleep(0.1)
            path = logs_dir / namespace / name / "worker.log"
            kwok.write_log(path, [])
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                kwok.GROUP, "v1alpha1", namespace, "logs",
                kwok.logs_object(namespace, name, "worker", path))
            paths[name] = path
        say(f"{pods} pods running")
        for name in names:          # KWOK serves each file once it has seen its Logs object
            while True:
                with contextlib.suppress(Exception):
                    core.read_namespaced_pod_log(name, namespace, container="worker")
                    break
                await asyncio.sleep(0.1)
        say("their logs served")
        relay = await relay_way(kube, names, paths, readers, lines)
        naive = await naive_way(kube, names, paths, readers, lines,
                                dict.fromkeys(names, lines))
        ratio = naive["upstream_streams"] / max(1, relay["upstream_streams"])
        print(f"streams to the API server, naive/relay: {ratio:.0f}x")
        return {"relay": relay, "naive": naive, "streams_ratio": ratio}
    finally:
        await kube.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--readers", type=int, default=10, help="readers per pod")
    parser.add_argument("--lines", type=int, default=20, help="lines written to each pod")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    from devtrip_scale.kube import connect

    with bed("logrelay") as b:
        api = connect(str(b.kubeconfig))
        try:
            figures = asyncio.run(run(b.namespace, b.kubeconfig, b.controlplane.logs_dir, api,
                                      args.pods, args.readers, args.lines))
        finally:
            api.close()
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
