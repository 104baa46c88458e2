"""Pipelines on the real test bed (kube-apiserver, controller-manager, scheduler, KWOK, Redis
7.0): a WorkerServer with its gRPC API in this process (bench_api.Served), each figure against a
baseline measured in the same run by the same observer — a pod watch of its own:

1. stage-to-stage transition: a chain of K one-pod stages run over gRPC (ExecutePipeline); a
   transition is from the observer seeing stage i's pod Succeeded to it seeing stage i+1's pod
   appear. Baseline: the least any controller can do — on the same event, create the next pod
   (one API call), the chain run the same way and timed by the same observer;
2. log latency, pod file → gRPC client: lines appended to a running stage pod's KWOK log file,
   timed from the write to their arrival on a StreamBuildLogs(follow) client over TLS. Baseline:
   a bare pods/log?follow of the same pod from the API server, reading the same lines.
   With --hops, each line is also timed at every hop on its way (the server runs in this
   process): relayed from pods/log, in the build's merged journal, handed to the Lua script
   that writes it to Redis, the script's answer, read back by the serving XREAD, and the client.

    python bench/bench_pipeline.py [--quick] [--stages K] [--lines N] [--hops] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
from bed import bed, write_json  # noqa: E402
from bench_api import TOKEN, Served, settings  # noqa: E402

from devtrip_scale.kube.aio import AsyncKube  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc  # noqa: E402
from devtrip_scale.workers.watch import PodWatch  # noqa: E402
from testbed import kwok  # noqa: E402

RESOURCES = {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"cpu": "10m",
                                                                      "memory": "8Mi"}}


class Observer:
    """Its own list-then-watch of every pod of the namespace (the stages' and the bare ones):
    when each pod was first seen, and when it was first seen Succeeded (monotonic seconds)."""

    def __init__(self, kube: AsyncKube) -> None:
        self.added: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.on_succeeded: list[Any] = []
        self.watch = PodWatch(kube, "", self._seen)

    def _seen(self, kind: str, pod: dict[str, Any]) -> None:
        now = time.monotonic()
        name = pod["metadata"]["name"]
        self.added.setdefault(name, now)
        if (pod.get("status") or {}).get("phase") == "Succeeded" and name not in self.succeeded:
            self.succeeded[name] = now
            for hook in self.on_succeeded:
                hook(name)


class Hops:
    """Where a log line is on its way through the server, by its text (monotonic seconds):
    wraps the journal's append, the store's add_lines and its log reader, in this process."""

    def __init__(self) -> None:
        self.appended: dict[str, list[float]] = {}   # the pod's journal, then the build's
        self.script_start: dict[str, float] = {}
        self.script_end: dict[str, float] = {}
        self.read: dict[str, float] = {}
        self.figures: dict[str, dict[str, dict[str, float]]] = {}   # by "N pod(s)"

    def reset(self) -> None:
        """Forget the lines timed so far (each run writes the same texts)."""
        for timed in (self.appended, self.script_start, self.script_end, self.read):
            timed.clear()

    def install(self) -> None:
        from devtrip_scale.workers.builds import BuildStore
        from devtrip_scale.workers.journal import Journal
        from devtrip_scale.workers.progress import LogLine

        hops = self
        append, add_lines, logs = Journal.append, BuildStore.add_lines, BuildStore.logs

        def timed_append(journal: Any, item: Any) -> int:
            if isinstance(item, LogLine):
                hops.appended.setdefault(item.text, []).append(time.monotonic())
            return append(journal, item)

        async def timed_add_lines(store: Any, build_id: str, token: str, lines: Any) -> int:
            now = time.monotonic()
            for _, line in lines:
                hops.script_start.setdefault(line.text, now)
            added = await add_lines(store, build_id, token, lines)
            now = time.monotonic()
            for _, line in lines:
                hops.script_end.setdefault(line.text, now)
            return added

        async def timed_logs(store: Any, *args: Any, **kwargs: Any) -> Any:
            async for item in logs(store, *args, **kwargs):
                if isinstance(item, tuple):
                    hops.read.setdefault(item[1].text, time.monotonic())
                yield item

        Journal.append = timed_append  # type: ignore[method-assign]
        BuildStore.add_lines = timed_add_lines  # type: ignore[method-assign]
        BuildStore.logs = timed_logs  # type: ignore[method-assign]

    def table(self, written: dict[str, float], arrived: dict[str, float]
              ) -> dict[str, dict[str, float]]:
        """Each hop's share of a line's latency, for the lines seen at every hop."""
        steps: dict[str, list[float]] = {k: [] for k in (
            "pod file → relayed (pods/log follow)", "relayed → build journal (merge)",
            "build journal → Lua script sent", "Lua script round trip (add_lines)",
            "script answered → serving XREAD returns", "XREAD → gRPC client (TLS)",
            "whole way")}
        for text, w in written.items():
            times = self.appended.get(text, [])
            marks = [w, times[0] if times else None, times[-1] if times else None,
                     self.script_start.get(text), self.script_end.get(text),
                     self.read.get(text), arrived.get(text)]
            if any(m is None for m in marks):
                continue
            for name, a, b in zip(steps, marks, marks[1:], strict=False):
                steps[name].append(b - a)  # type: ignore[operator]
            steps["whole way"].append(marks[-1] - w)  # type: ignore[operator]
        return {name: summary(values) for name, values in steps.items() if values}


HOPS: Hops | None = None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(values, 0.5) * 1000, "p99_ms": pct(values, 0.99) * 1000,
            "mean_ms": statistics.fmean(values) * 1000, "n": len(values)}


def chain(k: int, run_seconds: float) -> str:
    stages = [{"name": f"s{i}", **({"needs": [f"s{i - 1}"]} if i else {}),
               "annotations": {kwok.RUN_SECONDS: f"{run_seconds:g}"}} for i in range(k)]
    return yaml.safe_dump({"name": "chain", "defaults": {
        "image": "registry.invalid/ci:1", "resources": RESOURCES}, "stages": stages})


def stage_pod(build: str, stage: str, pods: dict[str, float]) -> str:
    from devtrip_scale.workers.executor import stage_task_id
    from devtrip_scale.workers.tasks import task_key

    prefix = f"w-{task_key(stage_task_id(build, stage))}-0-"
    [name] = [n for n in pods if n.startswith(prefix)][:1]
    return name


async def bare_chain(kube: AsyncKube, observer: Observer, k: int, run_seconds: float) -> None:
    """The baseline: pod i+1 is created the moment the watch sees pod i Succeeded."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def body(i: int) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"bare-{i}", "labels": {"bench": "bare"},   # not the server's pods
            "annotations": {kwok.RUN_SECONDS: f"{run_seconds:g}"}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "worker", "image": "registry.invalid/ci:1", "resources": RESOURCES}]}}

    def next_pod(name: str) -> None:
        if not name.startswith("bare-"):
            return
        i = int(name.split("-")[1]) + 1
        if i == k:
            done.set()
            return
        task = loop.create_task(kube.create_pod(body(i)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    observer.on_succeeded.append(next_pod)
    await kube.create_pod(body(0))
    await asyncio.wait_for(done.wait(), k * (run_seconds + 30))
    observer.on_succeeded.remove(next_pod)


def transitions(observer: Observer, names: list[str]) -> list[float]:
    return [observer.added[b] - observer.succeeded[a] for a, b in itertools.pairwise(names)]


async def measure(served: Served, kubeconfig: Path, namespace: str, work: Path, k: int,
                  lines: int) -> dict[str, Any]:
    kube = AsyncKube.connect(str(kubeconfig), None, namespace, writes_per_second=1000,
                             write_burst=1000)
    observer = Observer(kube)
    watching = asyncio.create_task(observer.watch.run())
    await asyncio.wait_for(observer.watch.synced.wait(), 30)
    assert served.api is not None
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials((work / "ca.pem").read_bytes()),
        grpc.access_token_call_credentials(TOKEN))
    channel = grpc.secure_channel(f"localhost:{served.api.port}", creds)
    otto = pb_grpc.OttoscalerServiceStub(channel)
    logs = pb_grpc.LogStreamingServiceStub(channel)
    try:
        # 1. stage-to-stage, then the bare chain, each timed by the observer
        run = 1.0
        progress = await asyncio.to_thread(lambda: list(otto.ExecutePipeline(
            pb.ExecutePipelineRequest(pipeline_yaml=chain(k, run), file_name="chain.yaml",
                                      build_id="chain-1"))))
        assert progress[-1].pipeline_state == pb.PIPELINE_STATE_SUCCEEDED, progress[-1]
        ours = [stage_pod("chain-1", f"s{i}", observer.added) for i in range(k)]
        await bare_chain(kube, observer, k, run)
        bare = [f"bare-{i}" for i in range(k)]
        stage = {"devscale": summary(transitions(observer, ours)),
                 "baseline (create on the watch event)": summary(transitions(observer, bare))}

        latency = {}
        for workers in (1, 2):
            latency[f"{workers} pod(s)"] = await log_latency(
                otto, logs, kube, observer, kubeconfig, namespace, work, workers, lines)
        return {"stage_to_stage": stage, "log_latency": latency, "stages": k, "lines": lines}
    finally:
        channel.close()
        watching.cancel()
        await kube.aclose()


async def log_latency(otto: Any, logs: Any, kube: AsyncKube, observer: Observer,
                      kubeconfig: Path, namespace: str, work: Path, workers: int,
                      lines: int) -> dict[str, dict[str, float]]:
    """A running stage of `workers` pods writes `lines` lines, round robin across its pods,
    0.1 s apart; each timed from the write to a StreamBuildLogs(follow) client and to a bare
    pods/log follow per pod. With several pods the build's stream is merged in time order,
    which holds a line until the other pods have passed its time (at most 0.25 s)."""
    build = f"logs-{workers}"
    one = yaml.safe_dump({"name": "logs", "defaults": {
        "image": "registry.invalid/ci:1", "resources": RESOURCES}, "stages": [
        {"name": "talk", "workers": workers, "annotations": {kwok.RUN_SECONDS: "600"}}]})
    call = otto.ExecutePipeline(pb.ExecutePipelineRequest(
        pipeline_yaml=one, file_name="logs.yaml", build_id=build))
    next(iter(call))
    pods: list[str] = []
    for _ in range(300):
        pods = sorted(n for n in observer.added if n.startswith(f"w-{build}"))
        if len(pods) == workers:
            break
        await asyncio.sleep(0.1)
    files = [work / f"{pod}.log" for pod in pods]
    if HOPS is not None:
        HOPS.reset()
    for pod, path in zip(pods, files, strict=True):
        await asyncio.to_thread(open_log, kubeconfig, namespace, pod, path)
    arrived_grpc: dict[str, float] = {}
    arrived_bare: dict[str, float] = {}
    stream = logs.StreamBuildLogs(pb.BuildLogsRequest(build_id=build, follow=True))
    bare: list[asyncio.Task[None]] = []
    try:

        def read_grpc() -> None:
            try:
                for entry in stream:
                    arrived_grpc.setdefault(entry.message, time.monotonic())
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=read_grpc, daemon=True)
        reader.start()

        async def read_bare(pod: str) -> None:
            async for raw in kube.follow_log(pod, "worker"):
                arrived_bare.setdefault(raw.split(" ", 1)[-1], time.monotonic())

        bare += [asyncio.create_task(read_bare(pod)) for pod in pods]
        await asyncio.sleep(2)               # every stream open and idle
        written: dict[str, float] = {}
        for i in range(lines):
            text = f"line {i}"
            kwok.write_log(files[i % workers], [text])
            written[text] = time.monotonic()
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while (len(arrived_grpc) < lines or len(arrived_bare) < lines) and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stream.cancel()
        for task in bare:
            task.cancel()
    await asyncio.to_thread(otto.CancelPipeline, pb.CancelPipelineRequest(build_id=build))
    if HOPS is not None:
        hops = HOPS.figures[f"{workers} pod(s)"] = HOPS.table(written, arrived_grpc)
        print(f"hops of a line, {workers} pod(s) (p50 / p99 ms):")
        for name, row in hops.items():
            print(f"  {name:42} {row['p50_ms']:7.2f} / {row['p99_ms']:7.2f}")
    return {"devscale (StreamBuildLogs over TLS)": summary(
                [arrived_grpc[t] - w for t, w in written.items() if t in arrived_grpc]),
            "baseline (bare pods/log follow)": summary(
                [arrived_bare[t] - w for t, w in written.items() if t in arrived_bare])}


def open_log(kubeconfig: Path, namespace: str, pod: str, path: Path) -> None:
    """Point KWOK at a log file for the pod, and wait until pods/log serves it."""
    from kubernetes import client

    from devtrip_scale.kube import connect

    kwok.write_log(path, [])
    api = connect(str(kubeconfig))
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            kwok.GROUP, "v1alpha1", namespace, "logs",
            kwok.logs_object(namespace, pod, "worker", path))
        core = client.CoreV1Api(api)
        for _ in range(300):
            try:
                core.read_namespaced_pod_log(pod, namespace, container="worker")
                return
            except client.ApiException:
                time.sleep(0.1)
        raise TimeoutError(f"KWOK never served the log of {pod}")
    finally:
        api.close()


def show(title: str, rows: dict[str, dict[str, float]]) -> None:
    (name, ours), (base_name, base) = rows.items()
    print(f"{title}: {name} p50 {ours['p50_ms']:.0f} ms p99 {ours['p99_ms']:.0f} ms | "
          f"{base_name} p50 {base['p50_ms']:.0f} ms p99 {base['p99_ms']:.0f} ms | ratio p50 "
          f"{ours['p50_ms'] / max(base['p50_ms'], 1e-9):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short chain, few lines")
    parser.add_argument("--stages", type=int, default=11, help="stages of the chain")
    parser.add_argument("--lines", type=int, default=50, help="log lines written")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--hops", action="store_true",
                        help="also time each log line at every hop inside the server")
    args = parser.parse_args()
    if args.hops:
        global HOPS
        HOPS = Hops()
        HOPS.install()
    k, lines = (4, 10) if args.quick else (args.stages, args.lines)
    with bed("pipeline") as b, \
            Served(settings(b.namespace, b.redis_url, b.work), b.kubeconfig) as served:
        figures = asyncio.run(measure(served, b.kubeconfig, b.namespace, b.work, k, lines))
    show("stage-to-stage transition", figures["stage_to_stage"])
    for pods, rows in figures["log_latency"].items():
        show(f"log latency, pod file → client, {pods}", rows)
    if HOPS is not None:
        figures["log_hops"] = HOPS.figures
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
