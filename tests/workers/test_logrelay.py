"""The live log relay (workers/logrelay.py) and AsyncKube.follow_log against the whole-cluster
test bed (kube-apiserver, scheduler, controller-manager, KWOK serving pods/log from files): lines
a running pod writes reach a reader live, in order and tagged; two pods' lines come out in
timestamp order (a reader and a build's journal); the follow stops when the pod ends though
KWOK's stream never does, and a line written just before the end is kept; a pod deleted
mid-follow ends its journal; a reader cancelled mid-stream leaves no follow and no task;
100 readers of one pod and 20 pods at once get every line; and through a WorkerServer, a
finished worker's log is relayed completely before its pod is deleted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtrip_scale.core.errors import KubeNotFound
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import SELECTOR
from devtrip_scale.workers.config import WorkerModel, WorkersSettings
from devtrip_scale.workers.journal import Journal, Missed
from devtrip_scale.workers.logrelay import BUILD_LABEL, STAGE_LABEL, LogRelay, parse_line
from devtrip_scale.workers.pods import worker_pod
from devtrip_scale.workers.progress import LogLine
from devtrip_scale.workers.tasks import task_key
from devtrip_scale.workers.watch import PodWatch
from testbed import kwok
from testbed.redis import Redis
from tests.conftest import Cluster
from tests.workers.conftest import worker_config

pytestmark = pytest.mark.integration

LIVE_BOUND = 3.0       # seconds from a line written to a reader having it


def template(run_seconds: float) -> WorkerModel:
    return WorkerModel.model_validate({
        "image": "w:1", "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                      "limits": {"cpu": "10m", "memory": "8Mi"}},
        "annotations": {kwok.RUN_SECONDS: f"{run_seconds:g}"}})


@dataclass
class Bed:
    cluster: Cluster
    kube: AsyncKube
    relay: LogRelay
    watch: PodWatch

    async def pod(self, task: str, index: int = 0, attempt: int = 0, run_seconds: float = 600,
                  build: str | None = None, stage: str | None = None) -> str:
        body = worker_pod(template(run_seconds), task, index, attempt, 1, "0-0")
        if build:
            body["metadata"]["labels"][BUILD_LABEL] = build
        if stage:
            body["metadata"]["labels"][STAGE_LABEL] = stage
        await self.kube.create_pod(body)
        return str(body["metadata"]["name"])

    async def running(self, *names: str, timeout: float = 30) -> None:
        await self.until(lambda: all(phase(self.watch.pods.get(n)) == "Running"
                                     for n in names), f"{names} running", timeout)

    async def serve_log(self, name: str, lines: list[str] | None = None) -> Path:
        """KWOK serves the pod's log file from now on (written through testbed.kwok)."""
        return await asyncio.to_thread(self.cluster.pod_log, name, lines or [],
                                       container="worker")

    @staticmethod
    async def until(check: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def idle(self, timeout: float = 10) -> None:
        """Nothing left behind: no follow, no reader, no relay task, no task of a reader."""
        def counts() -> tuple[int, int, int, int]:
            readers = [t for t in asyncio.all_tasks()
                       if t.get_name().startswith("log-") and not t.done()]
            return self.relay.follows, self.relay.readers, self.relay.tasks, len(readers)

        await self.until(lambda: counts() == (0, 0, 0, 0), "the relay idle (follows, "
                         "readers, relay tasks, log-* tasks all 0)", timeout)


def phase(pod: dict[str, Any] | None) -> str | None:
    return None if pod is None else (pod.get("status") or {}).get("phase")


@contextlib.asynccontextmanager
async def bed(cluster: Cluster, kubeconfig: Path, **options: Any) -> AsyncIterator[Bed]:
    kube = AsyncKube.connect(str(kubeconfig), None, cluster.namespace)
    relay = LogRelay(kube, **options)
    watch = PodWatch(kube, SELECTOR, relay.on_pod)
    running = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.synced.wait(), 30)
        yield Bed(cluster, kube, relay, watch)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await relay.aclose()
        await kube.aclose()


async def collect(stream: AsyncIterator[LogLine | Missed], into: list[tuple[float, LogLine]]
                  ) -> None:
    async for item in stream:
        assert isinstance(item, LogLine), f"nothing may be missed here: {item}"
        into.append((time.monotonic(), item))


def test_follow_log_streams_lines_as_written_and_maps_errors(cluster: Cluster,
                                                             admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig) as b:
            name = await b.pod("direct")
            await b.running(name)
            path = await b.serve_log(name, ["first"])
            got: list[str] = []

            async def follow() -> None:
                async for raw in b.kube.follow_log(name, "worker"):
                    got.append(raw)

            task = asyncio.create_task(follow())
            await b.until(lambda: len(got) == 1, "the first line")
            kwok.write_log(path, ["second"])
            await b.until(lambda: len(got) == 2, "the second line, live")
            assert [parse_line(r)[1] for r in got] == ["first", "second"]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert b.kube.calls["get pods/log"] >= 1
            later = await b.kube.read_log_lines(name, "worker",
                                                since_time=got[1].split(" ")[0][:19] + "Z")
            assert [parse_line(r)[1] for r in later][-1] == "second"
            with pytest.raises(KubeNotFound, match="pods/log/nope not found"):
                async for _ in b.kube.follow_log("nope", "worker"):
                    pass

    asyncio.run(main())


def test_live_lines_reach_a_reader_in_order_tagged_and_a_cancelled_reader_leaves_nothing(
        cluster: Cluster, admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig) as b:
            name = await b.pod("live-1", index=2, attempt=1, build="b-1", stage="compile")
            await b.running(name)
            path = await b.serve_log(name)
            got: list[tuple[float, LogLine]] = []
            reader = asyncio.create_task(collect(
                b.relay.task_lines(task_key("live-1"), None, follow=True), got))
            await b.until(lambda: b.relay.follows == 1, "the follow a reader asked for")
            latencies = []
            for i in range(10):
                written = time.monotonic()
                kwok.write_log(path, [f"line {i}"])
                await b.until(lambda i=i: len(got) > i, f"line {i} at the reader", 10)
                latencies.append(got[i][0] - written)
            print(f"\nlive latency: max {max(latencies):.3f}s, mean "
                  f"{sum(latencies) / len(latencies):.3f}s over {len(latencies)} lines")
            assert max(latencies) < LIVE_BOUND
            lines = [line for _, line in got]
            assert [line.text for line in lines] == [f"line {i}" for i in range(10)]
            assert [line.time for line in lines] == sorted(line.time for line in lines)
            first = lines[0]
            assert (first.pod, first.task_id, first.build_id, first.stage, first.index,
                    first.attempt, first.container, first.stream) == (
                name, "live-1", "b-1", "compile", 2, 1, "worker", "combined")
            assert abs(first.time - time.time()) < 60
            # the client goes away mid-stream: its reader and the follow kept for it end
            assert b.relay.readers == 1 and b.relay.tasks >= 1
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await b.idle()
            kept = b.relay.logs[name].journal
            assert not kept.closed and kept.last == 10     # the pod still runs

    asyncio.run(main())


def test_two_pods_interleave_in_timestamp_order_for_a_reader_and_a_build(
        cluster: Cluster, admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig) as b:
            build: Journal[LogLine] = Journal()
            b.relay.collect_build("b-2", build)
            a = await b.pod("pair", 0, build="b-2", stage="test", run_seconds=12)
            c = await b.pod("pair", 1, build="b-2", stage="test", run_seconds=12)
            await b.running(a, c)
            paths = {a: await b.serve_log(a), c: await b.serve_log(c)}
            got: list[tuple[float, LogLine]] = []
            reader = asyncio.create_task(collect(
                b.relay.task_lines(task_key("pair"), None, follow=True), got))
            await b.until(lambda: b.relay.follows == 2, "both pods followed")
            written = []
            for i in range(12):
                name = (a, c)[i % 2]
                kwok.write_log(paths[name], [f"{name} {i}"])
                written.append(f"{name} {i}")
                await asyncio.sleep(0.03)
            await b.until(lambda: len(got) == 12, "all 12 lines at the reader", 10)
            assert [line.text for _, line in got] == written
            assert {line.pod for _, line in got} == {a, c}
            # the pods end (KWOK), the build's journal gets every line in the same order
            await asyncio.wait_for(b.relay.finish_build("b-2"), 40)
            assert build.closed
            assert [line.text for _, line in build.items()] == written
            await asyncio.wait_for(reader, 20)     # both pods over: the follow ends by itself
            await b.idle()

    asyncio.run(main())


def test_the_follow_stops_when_the_pod_ends_and_the_last_lines_are_kept(
        cluster: Cluster, admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig, follow_all=True) as b:
            name = await b.pod("ends", run_seconds=5)
            await b.running(name)
            path = await b.serve_log(name)
            pl = b.relay.logs[name]
            before_end: list[str] = []
            i = 0
            while phase(b.watch.pods.get(name)) == "Running":   # write until the very end
                kwok.write_log(path, [f"tick {i}"])
                if phase(b.watch.pods.get(name)) == "Running":
                    before_end.append(f"tick {i}")
                i += 1
                await asyncio.sleep(0.05)
            await asyncio.wait_for(b.relay.drained(name), 15)
            assert pl.journal.closed
            texts = [line.text for _, line in pl.journal.items()]
            assert texts[:len(before_end)] == before_end       # nothing lost, no duplicate
            assert len(texts) == len(set(texts))
            print(f"\n{len(before_end)} lines before the end, {len(texts)} relayed; "
                  f"follow requests: {b.kube.calls['get pods/log']}")
            await b.idle()        # KWOK's stream never ends: the relay stopped it

    asyncio.run(main())


def test_a_pod_deleted_mid_follow_ends_its_journal(cluster: Cluster,
                                                   admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig, follow_all=True) as b:
            name = await b.pod("deleted")
            await b.running(name)
            path = await b.serve_log(name, ["one", "two"])
            pl = b.relay.logs[name]
            await b.until(lambda: pl.journal.last == 2, "two lines relayed")
            kwok.write_log(path, ["three"])
            await b.until(lambda: pl.journal.last == 3, "the third line relayed")
            assert b.relay.follows == 1
            await b.kube.delete_pod(name)
            await asyncio.wait_for(pl.done.wait(), 15)
            assert pl.journal.closed and pl.gone
            assert [line.text for _, line in pl.journal.items()] == ["one", "two", "three"]
            await b.idle()

    asyncio.run(main())


def test_100_readers_of_one_pod_and_20_pods_at_once_get_every_line(
        cluster: Cluster, admin_kubeconfig: Path) -> None:
    async def main() -> None:
        async with bed(cluster, admin_kubeconfig) as b:
            names = [await b.pod(f"many-{i}") for i in range(20)]
            await b.running(*names, timeout=60)
            paths = dict(zip(names, await asyncio.gather(*(b.serve_log(n) for n in names)),
                             strict=True))
            one = names[0]
            got: dict[tuple[str, int], list[tuple[float, LogLine]]] = {}
            readers = []
            for r in range(100):       # 100 readers of the first pod
                got[(one, r)] = []
                readers.append(asyncio.create_task(collect(
                    b.relay.task_lines(task_key("many-0"), one, follow=True), got[(one, r)])))
            for n, name in enumerate(names[1:], 1):   # and one reader of each other pod
                got[(name, 0)] = []
                readers.append(asyncio.create_task(collect(
                    b.relay.task_lines(task_key(f"many-{n}"), None, follow=True),
                    got[(name, 0)])))
            await b.until(lambda: b.relay.follows == 20, "one follow per pod, 20 in all")
            assert b.relay.readers == 119
            started = time.monotonic()
            for i in range(20):
                for name in names:
                    kwok.write_log(paths[name], [f"{name} line {i}"])
                await asyncio.sleep(0.02)
            await b.until(lambda: all(len(v) == 20 for v in got.values()),
                          "every reader has all 20 lines", 30)
            print(f"\n119 readers of 20 pods, 400 lines written: all delivered in "
                  f"{time.monotonic() - started:.2f}s with {b.relay.follows} follows")
            for (name, _), lines in got.items():
                assert [line.text for _, line in lines] == [f"{name} line {i}"
                                                            for i in range(20)]
            assert b.relay.follows == 20     # one per pod however many read it
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await b.idle()

    asyncio.run(main())


def test_a_worker_servers_finished_log_is_relayed_completely_before_the_pod_is_deleted(
        cluster: Cluster, redis_server: Redis, admin_kubeconfig: Path, tmp_path: Path) -> None:
    from devtrip_scale.workers.intake import connect as redis_connect
    from devtrip_scale.workers.server import WorkerServer

    settings = WorkersSettings.model_validate(worker_config(
        cluster.namespace, redis_server.url, f"lr{time.time_ns() % 10**6}", tmp_path / "logs",
        run_seconds=4))

    async def main() -> None:
        kube = AsyncKube.connect(str(admin_kubeconfig), None, cluster.namespace)
        redis = redis_connect(settings.redis)
        server = WorkerServer(settings, kube, redis, consumer="lr")
        seen: list[tuple[str, str | None, bool, int]] = []
        relay_on_pod = server.logrelay.on_pod

        def on_pod(kind: str, pod: dict[str, Any]) -> None:     # record what the relay had
            name = pod["metadata"]["name"]
            pl = server.logrelay.logs.get(name)
            seen.append((kind, phase(pod), pl is not None and pl.journal.closed,
                         0 if pl is None else pl.journal.last))
            relay_on_pod(kind, pod)

        server.logrelay.on_pod = on_pod      # type: ignore[method-assign]
        running = asyncio.create_task(server.run())
        try:
            await Bed.until(lambda: server.ready, "the server ready")
            await redis.xadd(settings.redis.stream, {"type": "scale_up", "pod_count": "1",
                                                     "task_id": "relayed"})
            name = "w-relayed-0-0"
            await Bed.until(lambda: phase(server.watch.pods.get(name)) == "Running",
                            "the worker running")
            path = await asyncio.to_thread(cluster.pod_log, name, ["start"], container="worker")
            got: list[tuple[float, LogLine]] = []
            reader = asyncio.create_task(collect(
                server.logrelay.task_lines(task_key("relayed"), None, follow=True), got))
            written = ["start"]
            i = 0
            while phase(server.watch.pods.get(name)) == "Running":
                kwok.write_log(path, [f"work {i}"])
                written.append(f"work {i}")
                i += 1
                await asyncio.sleep(0.1)
            await Bed.until(lambda: name not in server.watch.pods, "the pod deleted", 30)
            await asyncio.wait_for(reader, 30)
            texts = [line.text for _, line in got]
            assert texts[:len(written) - 1] == written[:-1] and len(texts) == len(set(texts))
            [deleted] = [s for s in seen if s[0] == "DELETED"]
            assert deleted[2] and deleted[3] == len(texts), (
                f"the journal was closed with every line before the delete: {deleted}")
            kept = (tmp_path / "logs" / "relayed.log").read_text()
            assert all(t in kept for t in texts)
            from prometheus_client import generate_latest

            server._gauges()
            metrics = generate_latest(server.telemetry.registry).decode()
            assert "devscale_workers_log_follows 0.0" in metrics
            assert "devscale_workers_log_readers 0.0" in metrics
        finally:
            server.stop.set()
            await asyncio.wait_for(running, 30)
            assert server.logrelay.follows == 0 and server.logrelay.tasks == 0
            await redis.aclose()
            await kube.aclose()

    asyncio.run(main())
