"""Durable builds (state, journals and logs in Redis; leases; adoption) on the real test bed
(kube-apiserver, controller-manager, scheduler, KWOK, Redis 7.0), each figure against a baseline
from the same run:

1. progress latency: a build's progress messages timed from the owner's emit (the event's own
   time) to their arrival on an ExecutePipeline client over TLS. Baseline: a bare Redis round
   trip, XADD by one client to an XREAD BLOCK of another, timed the same way;
2. Redis memory: MEMORY USAGE of a finished build's keys (hash, progress and log streams), and of
   a log stream holding 10,000 lines of a real pod;
3. time to adopt after SIGKILL: two `devscale workers serve` processes; the owner of a running
   build SIGKILLed; timed until the other holds the build's lease and until its first progress
   message. Baseline: the lease TTL (the least any lease-based takeover can take);
4. 2 replicas × 20 concurrent builds (2-stage chains of 1 s pods, 20 submitted to each replica
   at once): wall time, build duration p50/p99, every build succeeded, one result each.
   Baseline: the same build run alone. Where the time goes: the CPU seconds (user + system,
   from /proc) each process of the run spent in it — the replicas, the control plane, KWOK,
   Redis, this benchmark's clients — beside the whole machine's busy CPU seconds (the rest is
   other work on the machine) and the wall time. With --profile DIR the replicas run under
   cProfile ($DEVSCALE_PROFILE) and their internal time is summed by library.

    python bench/bench_durable.py [--quick] [--concurrent-only] [--profile DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
import redis  # noqa: E402
from bed import Bed, bed, write_json  # noqa: E402
from bench_api import TOKEN, Served, settings  # noqa: E402
from bench_pipeline import RESOURCES, open_log  # noqa: E402

from devtrip_scale.workers.api.v1 import devscale_pb2 as pb  # noqa: E402
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc  # noqa: E402
from testbed import kwok  # noqa: E402
from testbed.net import free_port, wait_until  # noqa: E402

PREFIX = "api:requests"      # the bench config's redis.stream: builds live under it


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(values, 0.5) * 1000, "p99_ms": pct(values, 0.99) * 1000,
            "mean_ms": statistics.fmean(values) * 1000, "n": len(values)}


def pipeline(name: str, stages: list[tuple[str, float, int]], chain: bool = True) -> str:
    out = []
    for i, (stage, run, workers) in enumerate(stages):
        out.append({"name": stage, "workers": workers,
                    **({"needs": [stages[i - 1][0]]} if chain and i else {}),
                    "annotations": {kwok.RUN_SECONDS: f"{run:g}"}})
    return yaml.safe_dump({"name": name, "defaults": {"image": "registry.invalid/ci:1",
                                                      "resources": RESOURCES}, "stages": out})


def channel(work: Path, port: int) -> grpc.Channel:
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials((work / "ca.pem").read_bytes()),
        grpc.access_token_call_credentials(TOKEN))
    return grpc.secure_channel(f"localhost:{port}", creds)


def stamp(m: Any) -> float:
    return float(m.time.seconds + m.time.nanos / 1e9)


# ---------------------------------------------------------------- 1 and 2, in-process


def bare_round_trips(url: str, n: int) -> list[float]:
    """XADD (with the wall time) by one client, XREAD BLOCK by another: the floor of any
    Redis-borne progress message."""
    reader = redis.Redis.from_url(url, decode_responses=True)
    writer = redis.Redis.from_url(url, decode_responses=True)
    got: list[float] = []
    ready = threading.Event()

    def read() -> None:
        last = "$"
        ready.set()
        while len(got) < n:
            answer = reader.xread({"bench:bare": last}, block=5000, count=100)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    got.append(time.time() - float(fields["t"]))
                    last = entry_id

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ready.wait()
    time.sleep(0.2)
    for _ in range(n):
        writer.xadd("bench:bare", {"t": repr(time.time())})
        time.sleep(0.02)
    thread.join(30)
    reader.close()
    writer.close()
    return got


def read_journal(url: str, stream: str, out: list[float]) -> None:
    """A bare XREAD BLOCK of a build's progress stream: each event's emit → here."""
    import json

    r = redis.Redis.from_url(url, decode_responses=True)
    last = "0-0"
    try:
        while True:
            answer = r.xread({stream: last}, block=10_000, count=100)
            if not answer:
                return
            for entry_id, fields in answer[0][1]:
                last = entry_id
                if "e" in fields:
                    out.append(time.time() - float(json.loads(fields["e"])["t"]))
                if "end" in fields:
                    return
    finally:
        r.close()


def in_process(b: Bed, quick: bool) -> dict[str, Any]:
    cfg = settings(b.namespace, b.redis_url, b.work)
    figures: dict[str, Any] = {}
    with Served(cfg, b.kubeconfig) as served:
        assert served.api is not None
        ch = channel(b.work, served.api.port)
        otto = pb_grpc.OttoscalerServiceStub(ch)
        # 1. progress latency: a 4-stage chain of 3-worker stages, every message timed
        latencies: list[float] = []
        in_redis: list[float] = []
        for run in range(1 if quick else 3):
            build = f"progress-{run}"
            text = pipeline("progress", [(f"s{i}", 0.5, 3) for i in range(4)])
            watcher = threading.Thread(target=read_journal, args=(
                b.redis_url, f"{PREFIX}:build:{build}:progress", in_redis), daemon=True)
            watcher.start()
            for m in otto.ExecutePipeline(pb.ExecutePipelineRequest(
                    pipeline_yaml=text, file_name="p.yaml", build_id=build)):
                latencies.append(time.time() - stamp(m))
            watcher.join(30)
        bare = bare_round_trips(b.redis_url, len(latencies))
        figures["progress_latency"] = {
            "devscale (emit → ExecutePipeline client over TLS)": summary(latencies),
            "devscale (emit → the journal in Redis, read by a bare XREAD)": summary(in_redis),
            "baseline (bare XADD → XREAD BLOCK)": summary(bare)}
        # 2. memory: a finished build's keys; a log stream of 10,000 real lines
        r = redis.Redis.from_url(b.redis_url, decode_responses=True)

        def usage(build: str) -> dict[str, int]:
            keys = {"hash": f"{PREFIX}:build:{build}",
                    "progress": f"{PREFIX}:build:{build}:progress",
                    "logs": f"{PREFIX}:build:{build}:logs"}
            return {k: int(r.memory_usage(v, samples=0) or 0) for k, v in keys.items()}

        per_build = usage("progress-0")
        lines = 2_000 if quick else 10_000
        text = pipeline("talk", [("talk", 600, 1)])
        call = otto.ExecutePipeline(pb.ExecutePipelineRequest(
            pipeline_yaml=text, file_name="t.yaml", build_id="talk-1"))
        next(iter(call))
        pod = wait_pod(b, "talk-1")
        path = b.work / f"{pod}.log"
        open_log(b.kubeconfig, b.namespace, pod, path)
        kwok.write_log(path, [f"2026-12-04 step {i:05d}: compiling module {i % 97} of the "
                              "service, 3 warnings" for i in range(lines)])
        wait_until(lambda: int(r.hget(f"{PREFIX}:build:talk-1", "logseq") or 0) >= lines,
                   f"{lines} lines in Redis", timeout=120)
        log_bytes = int(r.memory_usage(f"{PREFIX}:build:talk-1:logs", samples=0) or 0)
        otto.CancelPipeline(pb.CancelPipelineRequest(build_id="talk-1"))
        figures["memory"] = {"finished build (4 stages × 3 workers), bytes": per_build,
                             "per 10,000 log lines, bytes": round(log_bytes * 10_000 / lines),
                             "log line text, bytes": 64}
        r.close()
        ch.close()
    return figures


def wait_pod(b: Bed, build: str) -> str:
    from kubernetes import client

    from devtrip_scale.kube import connect

    api = connect(str(b.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        for _ in range(300):
            pods = core.list_namespaced_pod(
                b.namespace, label_selector=f"devscale.devtrip.io/build={build}").items
            if pods and pods[0].status.phase == "Running":
                return str(pods[0].metadata.name)
            time.sleep(0.1)
        raise TimeoutError(f"no running pod of {build}")
    finally:
        api.close()


# ---------------------------------------------------------------- 3 and 4, real processes


@contextmanager
def replicas(b: Bed, names: list[str], lease: float, profile: Path | None = None
             ) -> Iterator[dict[str, tuple[Any, int]]]:
    cfg = settings(b.namespace, b.redis_url, b.work).model_dump(mode="json")
    cfg["pipelines"] = {"lease_seconds": lease, "adopt_seconds": 0.5}
    path = b.work / f"workers-{lease:g}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    procs: dict[str, tuple[Any, int]] = {}
    env = {**os.environ, "DEVSCALE_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    try:
        for name in names:
            port, http = free_port(), free_port()
            log = (b.work / f"serve-{name}.log").open("w")
            if profile is not None:
                env = {**env, "DEVSCALE_PROFILE": str(profile / f"{name}.pstats")}
            proc = subprocess.Popen(
                [sys.executable, "-m", "devtrip_scale", "workers", "serve", "-c", str(path),
                 "--kubeconfig", str(b.kubeconfig), "--listen", f"127.0.0.1:{http}",
                 "--consumer", name, "--api-listen", f"127.0.0.1:{port}", "--no-intake"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            procs[name] = (proc, port)
            wait_until(lambda h=http: healthy(h), f"replica {name}", timeout=60)
        yield procs
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds (user + system) spent so far by `root` and each of its descendants, by
    process (its command's first words), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    spent: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        spent[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    ours: dict[str, float] = {}
    for pid in spent:
        up = pid
        while up not in (root, 0, 1) and up in parent:
            up = parent[up]
        if up != root:
            continue
        try:
            words = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = process_name([w.decode(errors="replace") for w in words if w])
        ours[f"{name} [{pid}]"] = spent[pid]
    return ours


def process_name(argv: list[str]) -> str:
    """A short name for a process of the run from its command line."""
    if not argv:
        return "?"
    base = Path(argv[0]).name
    if "devtrip_scale" in argv and "--consumer" in argv:
        return f"devscale replica {argv[argv.index('--consumer') + 1]}"
    if base.startswith("python"):
        return "this benchmark (clients)"
    if len(argv) > 1 and not argv[1].startswith("-") and base not in ("redis-server",):
        return f"{base} {argv[1]}"
    return base


def machine_busy_seconds() -> float:
    """The whole machine's busy CPU seconds so far (every core; /proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    words = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(w) for w in words]
    idle = values[3] + values[4]                    # idle, iowait
    return (sum(values[:8]) - idle) / tick          # without guest time (counted in user)


def where_cpu_went(before: dict[str, float], after: dict[str, float], busy: float,
                   wall: float) -> dict[str, Any]:
    """Each process's CPU seconds between two cpu_seconds() readings (a process that ended
    in between is left out), the machine's, and the wall time."""
    per = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    per = dict(sorted(((n, v) for n, v in per.items() if v >= 0.01), key=lambda x: -x[1]))
    ours = sum(per.values())
    return {"wall_s": round(wall, 2), "machine_busy_cpu_s": round(busy, 2),
            "cores": os.cpu_count(), "this_run_cpu_s": round(ours, 2),
            "other_work_on_the_machine_cpu_s": round(busy - ours, 2), "by_process": per,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def healthy(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def adopt_once(b: Bed, r: Any, lease: float, n: int) -> tuple[float, float]:
    """SIGKILL the owner of a running build; (seconds until the other replica holds its lease,
    until that replica's first progress message reaches a client attached to it)."""
    with replicas(b, [f"a{n}", f"b{n}"], lease) as procs:
        (proc_a, port_a), (_, port_b) = procs[f"a{n}"], procs[f"b{n}"]
        build = f"adopt-{lease:g}-{n}"
        ch_a, ch_b = channel(b.work, port_a), channel(b.work, port_b)
        call = pb_grpc.OttoscalerServiceStub(ch_a).ExecutePipeline(
            pb.ExecutePipelineRequest(pipeline_yaml=pipeline("adopt", [("long", 60, 1)]),
                                      file_name="a.yaml", build_id=build))
        next(iter(call))
        wait_pod(b, build)
        last = int(r.hget(f"{PREFIX}:build:{build}", "seq") or 0)
        follow = pb_grpc.OttoscalerServiceStub(ch_b).ExecutePipeline(
            pb.ExecutePipelineRequest(build_id=build, after_sequence=last))
        arrived: list[float] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):
                for _ in follow:
                    arrived.append(time.monotonic())

        threading.Thread(target=read, daemon=True).start()
        killed = time.monotonic()
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait()
        lease_key = f"{PREFIX}:build:{build}:lease"
        took_lease = None
        while time.monotonic() - killed < lease + 30:
            if str(r.get(lease_key) or "").startswith(f"b{n}:"):
                took_lease = time.monotonic() - killed
                break
            time.sleep(0.01)
        while not arrived and time.monotonic() - killed < lease + 60:
            time.sleep(0.01)
        follow.cancel()
        call.cancel()
        # leave nothing running for the figures after this one
        pb_grpc.OttoscalerServiceStub(ch_b).CancelPipeline(
            pb.CancelPipelineRequest(build_id=build), timeout=60)
        ch_a.close()
        ch_b.close()
        if took_lease is None or not arrived:
            raise TimeoutError(f"build {build} was not adopted")
        return took_lease, arrived[0] - killed


def adoption(b: Bed, lease: float, samples: int) -> dict[str, Any]:
    r = redis.Redis.from_url(b.redis_url, decode_responses=True)
    took = [adopt_once(b, r, lease, n) for n in range(samples)]
    r.close()
    return {"lease_seconds": lease, "samples": samples,
            "lease taken, s": [round(x, 2) for x, _ in took],
            "first progress from the adopter, s": [round(y, 2) for _, y in took]}


def by_library(files: list[Path], top: int = 15) -> dict[str, Any]:
    """The profiles' internal time (tottime) summed by library (the path's package below
    site-packages or the standard library; devscale's own modules by module), and the
    functions that took the most."""
    import pstats

    stats = pstats.Stats(*(str(f) for f in files))
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    libraries: dict[str, float] = {}
    functions: list[tuple[float, str]] = []
    total = 0.0
    for (path, line, name), (_, _, tottime, _, _) in raw.items():
        total += tottime
        functions.append((tottime, f"{Path(path).name}:{line} {name}"))
        if "devtrip_scale/" in path:
            library = "devscale " + path.split("devtrip_scale/", 1)[1]
        elif "site-packages/" in path:
            library = path.split("site-packages/", 1)[1].split("/", 1)[0]
        elif path.startswith("~") or path == "":
            library = f"built-in: {name.split(' ')[-1].strip('<>')}"[:60]
        else:
            library = "stdlib " + Path(path).parent.name + "/" + Path(path).name
        libraries[library] = libraries.get(library, 0.0) + tottime
    ranked = sorted(libraries.items(), key=lambda x: -x[1])[:top]
    return {"profiled_cpu_s": round(total, 2),
            "by_library_pct": {k: round(100 * v / total, 1) for k, v in ranked},
            "top_functions_s": {f: round(t, 3) for t, f in sorted(functions, reverse=True)[:top]}}


def concurrent(b: Bed, per_replica: int, profile: Path | None = None) -> dict[str, Any]:
    text = pipeline("pair", [("one", 1, 1), ("two", 1, 1)])
    with replicas(b, ["r1", "r2"], 10, profile) as procs:
        ports = [procs["r1"][1], procs["r2"][1]]
        channels = [channel(b.work, p) for p in ports]

        def run(i: int, results: dict[str, tuple[float, int]]) -> None:
            otto = pb_grpc.OttoscalerServiceStub(channels[i % 2])
            started = time.monotonic()
            last = None
            for m in otto.ExecutePipeline(pb.ExecutePipelineRequest(
                    pipeline_yaml=text, file_name="pair.yaml", build_id=f"pair-{i}")):
                last = m
            assert last is not None
            results[f"pair-{i}"] = (time.monotonic() - started, last.pipeline_state)

        alone: dict[str, tuple[float, int]] = {}
        run(10_000, alone)
        results: dict[str, tuple[float, int]] = {}
        threads = [threading.Thread(target=run, args=(i, results)) for i in
                   range(2 * per_replica)]
        cpu_before, busy_before = cpu_seconds(os.getpid()), machine_busy_seconds()
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        wall = time.monotonic() - began
        cpu = where_cpu_went(cpu_before, cpu_seconds(os.getpid()),
                             machine_busy_seconds() - busy_before, wall)
        for ch in channels:
            ch.close()
    r = redis.Redis.from_url(b.redis_url, decode_responses=True)

    def reported() -> list[str]:     # a build is reported just after its last message
        return [f["build_id"] for _, f in r.xrange("api:results") if
                f.get("build_id", "").startswith("pair-") and f["build_id"] != "pair-10000"]

    deadline = time.monotonic() + 15
    while len(reported()) < 2 * per_replica and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)                    # and no second entry comes late
    entries = reported()
    r.close()
    durations = [d for d, _ in results.values()]
    return {"builds": 2 * per_replica, "wall_s": round(wall, 2),
            "succeeded": sum(s == pb.PIPELINE_STATE_SUCCEEDED for _, s in results.values()),
            "results_entries": len(entries), "distinct": len(set(entries)),
            "duration": summary(durations), "alone_s": round(alone["pair-10000"][0], 2),
            "cpu": cpu, **({"profile": by_library(sorted(profile.glob("*.pstats")))}
                           if profile is not None else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--concurrent-only", action="store_true",
                        help="only figure 4 (2 replicas × 20 builds, and where the CPU went)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="figure 4's replicas under cProfile, their profiles in DIR")
    args = parser.parse_args()
    if args.concurrent_only:
        with bed("durable") as b:
            figures = {"concurrent": concurrent(b, 5 if args.quick else 20, args.profile)}
        write_json(args.json, figures)
        print(yaml.safe_dump(figures, sort_keys=False))
        return
    with bed("durable") as b:
        figures = in_process(b, args.quick)
        say(f"progress latency: {figures['progress_latency']}")
        say(f"memory: {figures['memory']}")
        figures["adopt"] = [adoption(b, 3, 1 if args.quick else 3)]
        if not args.quick:
            figures["adopt"].append(adoption(b, 10, 1))
        say(f"adopt: {figures['adopt']}")
        figures["concurrent"] = concurrent(b, 5 if args.quick else 20, args.profile)
        say(f"2 replicas × builds: {figures['concurrent']}")
    write_json(args.json, figures)
    print(yaml.safe_dump(figures, sort_keys=False))


if __name__ == "__main__":
    main()
