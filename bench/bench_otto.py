"""The ottoscaler.v1 compatibility path against devscale.v1, in the same run, on the real test
bed (kube-apiserver + KWOK, Redis 7.0): one WorkerServer and its API in this process (their
own event loop, in a thread), grpcio clients over TLS on loopback with a bearer token.

1. ScaleUp round trip (one worker pod created per call, a new task each time), calls
   alternating ottoscaler.v1 / devscale.v1 on the same channel, each followed at once by the
   same call again (ALREADY_PROCESSED / created 0);
2. a 2-stage pipeline (a → b, one worker each, KWOK pods running 1 s), call to last progress
   message: ottoscaler.v1 ExecutePipeline with inline stages against devscale.v1's with the
   same pipeline as YAML, alternating;
3. log forwarding to a fake Otto-handler (grpc.aio, TLS, ACK on every line, in a process of
   its own): lines/s through OttoForwarder (relayed lines in, each converted, queued, sent,
   answered), against two baselines in the same run on the same lines, converted the same
   way — a bare bidirectional stream with the same stop-and-wait protocol (one line, its ACK,
   the next), and a bare stream that does not wait for answers (the transport's ceiling).

    python bench/bench_otto.py [--quick] [--calls N] [--builds N] [--lines N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from bed import bed, write_json  # noqa: E402
from bench_api import TOKEN, Served, pct, settings  # noqa: E402
from grpc import aio  # noqa: E402

from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto  # noqa: E402
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2_grpc as otto_grpc  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc  # noqa: E402
from devtrip_scale.workers.config import OttoHandlerModel, WorkersSettings  # noqa: E402
from devtrip_scale.workers.ottohandler import OttoForwarder, log_entry  # noqa: E402
from devtrip_scale.workers.progress import LogLine  # noqa: E402

PIPELINE = """\
name: two
defaults:
  image: registry.invalid/ci:1
  resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {cpu: 10m, memory: 8Mi}}
  annotations: {"devscale.test/run-seconds": "1"}
stages:
  - name: a
  - name: b
    needs: [a]
"""


def figures(values: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(values, 0.5) * 1000, "p99_ms": pct(values, 0.99) * 1000,
            "mean_ms": statistics.fmean(values) * 1000, "calls": len(values)}


def scale_up(channel: grpc.Channel, calls: int) -> dict[str, Any]:
    native = pb_grpc.OttoscalerServiceStub(channel)
    compat = otto_grpc.OttoscalerServiceStub(channel)
    times: dict[str, list[float]] = {k: [] for k in (
        "ottoscaler.v1 ScaleUp", "devscale.v1 ScaleUp", "ottoscaler.v1 repeat",
        "devscale.v1 repeat")}
    tag = uuid.uuid4().hex[:6]
    for i in range(3):                                  # warm both paths
        compat.ScaleUp(otto.ScaleRequest(task_id=f"w{tag}o{i}", worker_count=1), timeout=60)
        native.ScaleUp(pb.ScaleUpRequest(task_id=f"w{tag}n{i}", pod_count=1), timeout=60)
    for i in range(calls):             # each call, then the same call again at once
        t = time.perf_counter()
        answer = compat.ScaleUp(otto.ScaleRequest(task_id=f"{tag}o{i}", worker_count=1,
                                                  repository="https://git.invalid/x",
                                                  build_config={"A": "1"}), timeout=60)
        times["ottoscaler.v1 ScaleUp"].append(time.perf_counter() - t)
        assert answer.status == otto.ScaleResponse.SUCCESS, answer
        t = time.perf_counter()
        answer = compat.ScaleUp(otto.ScaleRequest(task_id=f"{tag}o{i}", worker_count=1),
                                timeout=60)
        times["ottoscaler.v1 repeat"].append(time.perf_counter() - t)
        assert answer.status == otto.ScaleResponse.ALREADY_PROCESSED, answer
        t = time.perf_counter()
        created = native.ScaleUp(pb.ScaleUpRequest(task_id=f"{tag}n{i}", pod_count=1),
                                 timeout=60)
        times["devscale.v1 ScaleUp"].append(time.perf_counter() - t)
        assert created.created == 1, created
        t = time.perf_counter()
        try:
            native.ScaleUp(pb.ScaleUpRequest(task_id=f"{tag}n{i}", pod_count=1), timeout=60)
        except grpc.RpcError as e:     # the task ended already (its pod ran 1 s): also a repeat
            if e.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise
        times["devscale.v1 repeat"].append(time.perf_counter() - t)
    return {name: figures(v) for name, v in times.items()}


def pipelines(channel: grpc.Channel, builds: int) -> dict[str, Any]:
    native = pb_grpc.OttoscalerServiceStub(channel)
    compat = otto_grpc.OttoscalerServiceStub(channel)
    times: dict[str, list[float]] = {"ottoscaler.v1 ExecutePipeline": [],
                                     "devscale.v1 ExecutePipeline": []}
    tag = uuid.uuid4().hex[:6]
    for i in range(builds):
        t = time.perf_counter()
        got = list(compat.ExecutePipeline(otto.PipelineRequest(
            pipeline_id=f"o{tag}-{i}", name="two", stages=[
                otto.PipelineStage(stage_id="a", worker_count=1),
                otto.PipelineStage(stage_id="b", worker_count=1, depends_on=["a"])]),
            timeout=120))
        last = got[-1] if got else None
        times["ottoscaler.v1 ExecutePipeline"].append(time.perf_counter() - t)
        assert last is not None and last.status == otto.STAGE_COMPLETED, last
        assert last.progress_percentage == 100
        t = time.perf_counter()
        sent = list(native.ExecutePipeline(pb.ExecutePipelineRequest(
            pipeline_yaml=PIPELINE, file_name="two.yaml", build_id=f"n{tag}-{i}"),
            timeout=120))
        end = sent[-1] if sent else None
        times["devscale.v1 ExecutePipeline"].append(time.perf_counter() - t)
        assert end is not None and end.pipeline_state == pb.PIPELINE_STATE_SUCCEEDED, end
    return {name: figures(v) for name, v in times.items()}


# ---------------------------------------------------------------- log forwarding


class Sink(otto_grpc.OttoHandlerLogServiceServicer):
    def __init__(self) -> None:
        self.lines = 0

    async def ForwardWorkerLogs(self, requests: Any, context: Any) -> Any:
        async for entry in requests:
            self.lines += 1
            yield otto.LogForwardResponse(status=otto.LogForwardResponse.ACK,
                                          sequence=int(entry.metadata.get("sequence", "0")))

    async def NotifyWorkerStatus(self, request: Any, context: Any) -> Any:
        return otto.WorkerStatusAck()


def _lines(n: int) -> list[LogLine]:
    return [LogLine(1764842400.0 + i / 1000, f"step {i}: compiling module {i % 97} … ok",
                    f"w-b-1-compile-0-{i % 4}", "b-1/compile", "b-1", "compile", i % 4, 0)
            for i in range(n)]


async def _forwarder(address: str, ca: Path, lines: list[LogLine]) -> float:
    cfg = OttoHandlerModel(address=address, ca_file=str(ca), queue_limit=len(lines) + 10)
    fwd = OttoForwarder(cfg, namespace="bench", say=lambda _: None)
    fwd.start()
    try:
        t = time.perf_counter()
        for line in lines:
            fwd.on_line(line)
        while fwd.lines:
            await asyncio.sleep(0.002)
        return time.perf_counter() - t
    finally:
        await fwd.aclose()


async def _bare(address: str, ca: Path, lines: list[LogLine], wait: bool) -> float:
    """The same lines, converted the same way, on one stream with nothing else around."""
    async with aio.secure_channel(address, grpc.ssl_channel_credentials(
            ca.read_bytes())) as channel:
        stub = otto_grpc.OttoHandlerLogServiceStub(channel)
        call = stub.ForwardWorkerLogs()
        t = time.perf_counter()
        if wait:
            for i, line in enumerate(lines):
                await call.write(log_entry(line, i + 1, "bench", "bench"))
                await call.read()
        else:
            async def reader() -> None:
                for _ in lines:
                    await call.read()

            done = asyncio.ensure_future(reader())
            for i, line in enumerate(lines):
                await call.write(log_entry(line, i + 1, "bench", "bench"))
            await done
        seconds = time.perf_counter() - t
        await call.done_writing()
        return seconds


async def _sink(work: Path) -> None:
    """The fake Otto-handler: serves until killed; prints its port."""
    server = aio.server()
    otto_grpc.add_OttoHandlerLogServiceServicer_to_server(Sink(), server)
    creds = grpc.ssl_server_credentials([((work / "server.key").read_bytes(),
                                          (work / "server.pem").read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


def forwarding(work: Path, n: int, rounds: int) -> dict[str, Any]:
    """The fake Otto-handler in a process of its own (as the CI server is), the clients here."""
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(work)],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    port = int(sink.stdout.readline())
    address, ca = f"localhost:{port}", work / "ca.pem"
    lines = _lines(n)
    seconds: dict[str, list[float]] = {"OttoForwarder": [], "bare stop-and-wait (baseline)": [],
                                       "bare stream, no wait (ceiling)": []}
    async def measure() -> None:            # one client event loop for every round
        await _bare(address, ca, lines[:200], True)                 # warm
        for _ in range(rounds):                                      # alternate the three
            seconds["OttoForwarder"].append(await _forwarder(address, ca, lines))
            seconds["bare stop-and-wait (baseline)"].append(
                await _bare(address, ca, lines, True))
            seconds["bare stream, no wait (ceiling)"].append(
                await _bare(address, ca, lines, False))

    try:
        asyncio.run(measure())
    finally:
        sink.terminate()
        sink.wait(10)
    return {name: {"lines": n, "rounds": rounds, "best_seconds": min(v),
                   "lines_per_second": n / min(v)} for name, v in seconds.items()}


def run(namespace: str, redis_url: str, kubeconfig: Path, work: Path, calls: int,
        builds: int, lines: int) -> dict[str, Any]:
    cfg = settings(namespace, redis_url, work)
    doc = cfg.model_dump(mode="json")
    doc["worker"]["annotations"] = {"devscale.test/run-seconds": "1"}
    cfg = WorkersSettings.model_validate(doc)
    out: dict[str, Any] = {}
    with Served(cfg, kubeconfig) as served:
        assert served.api is not None
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials((work / "ca.pem").read_bytes()),
            grpc.access_token_call_credentials(TOKEN))
        channel = grpc.secure_channel(f"localhost:{served.api.port}", creds)
        out["scale_up"] = scale_up(channel, calls)
        out["pipeline"] = pipelines(channel, builds)
        channel.close()
    out["forwarding"] = forwarding(work, lines, 3)
    s, p, f = out["scale_up"], out["pipeline"], out["forwarding"]
    for a, b in (("ottoscaler.v1 ScaleUp", "devscale.v1 ScaleUp"),
                 ("ottoscaler.v1 repeat", "devscale.v1 repeat")):
        print(f"{a:<32} p50 {s[a]['p50_ms']:7.2f} ms p99 {s[a]['p99_ms']:7.2f} ms | "
              f"{b} p50 {s[b]['p50_ms']:7.2f} ms p99 {s[b]['p99_ms']:7.2f} ms | "
              f"compat ÷ native p50 {s[a]['p50_ms'] / s[b]['p50_ms']:.2f}×")
    a, b = "ottoscaler.v1 ExecutePipeline", "devscale.v1 ExecutePipeline"
    print(f"2-stage pipeline, call to last message: {a} p50 {p[a]['p50_ms']:.0f} ms | {b} p50 "
          f"{p[b]['p50_ms']:.0f} ms | compat ÷ native {p[a]['p50_ms'] / p[b]['p50_ms']:.2f}× "
          f"({builds} builds each)")
    base = f["bare stop-and-wait (baseline)"]["lines_per_second"]
    for name, row in f.items():
        print(f"log forwarding, {lines} lines: {name:<32} {row['lines_per_second']:9.0f} "
              f"lines/s  ({row['lines_per_second'] / base:.2f}× the stop-and-wait baseline)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few calls, builds and lines")
    parser.add_argument("--calls", type=int, default=200, help="ScaleUp calls per path")
    parser.add_argument("--builds", type=int, default=5, help="pipelines per path")
    parser.add_argument("--lines", type=int, default=20_000, help="log lines forwarded")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)   # the fake handler
    args = parser.parse_args()
    if args.sink is not None:
        asyncio.run(_sink(args.sink))
        return
    calls, builds, lines = (10, 1, 500) if args.quick else (args.calls, args.builds,
                                                            args.lines)
    with bed("otto") as b:
        out = run(b.namespace, b.redis_url, b.kubeconfig, b.work, calls, builds, lines)
    write_json(args.json, out)


if __name__ == "__main__":
    main()
