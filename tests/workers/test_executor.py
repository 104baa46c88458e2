"""workers/executor.py against real Redis and the whole-cluster test bed (API server,
controller-manager, scheduler, KWOK): builds driven in-process through the `Pipelines` wired to
a WorkerServer as `devscale workers serve` wires them (progress read back from Redis). Pins:
parallel branches overlap, a stage starts when its own needs are done, retry with a fresh pod
name after a backoff, a stage that fails for good skips its dependants (fail_fast off) or
everything not started (on), stage timeouts, progress in order with every fact, pods deleted
after their logs are kept, idempotent start, cancel, a shutdown that hands builds over to
another server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kubernetes import client

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import BUILD_LABEL
from devtrip_scale.workers.api.server import wire_pipelines
from devtrip_scale.workers.builds import event_of
from devtrip_scale.workers.config import load_workers_config
from devtrip_scale.workers.executor import (
    Build,
    BuildStatus,
    NotAccepting,
    Pipelines,
    UnknownBuild,
)
from devtrip_scale.workers.intake import connect as redis_connect
from devtrip_scale.workers.pipeline import Pipeline, load_pipeline_text
from devtrip_scale.workers.progress import BuildState, ProgressEvent, StageState
from devtrip_scale.workers.server import WorkerServer
from devtrip_scale.workers.tasks import task_key
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration

RESOURCES = """\
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 100m, memory: 64Mi}
"""


def pipeline(stages: str, fail_fast: bool = True) -> Pipeline:
    """A pipeline whose stages give KWOK their behaviour as annotations: `run` seconds,
    `exit` code, `fail` attempts."""
    text = (f"name: test\nfail_fast: {str(fail_fast).lower()}\ndefaults:\n"
            f"  image: registry.invalid/ci:1\n  command: [run-stage]\n{RESOURCES}stages:\n"
            + textwrap.dedent(stages))
    return load_pipeline_text(text, "test.yaml")


def notes(run: float, exit: int | None = None, fail: int | None = None) -> str:
    out = {"devscale.test/run-seconds": f"{run:g}"}
    if exit is not None:
        out["devscale.test/exit-code"] = str(exit)
    if fail is not None:
        out["devscale.test/fail-attempts"] = str(fail)
    return json.dumps(out)


@asynccontextmanager
async def serving(workers: Workers, consumer: str = "c1", **overrides: Any
                  ) -> AsyncIterator[WorkerServer]:
    """A WorkerServer as `devscale workers serve` builds it, running, on the test namespace."""
    settings = load_workers_config(workers.configure(**overrides), env={})
    kube = AsyncKube.connect(str(workers.kubeconfig), None, settings.namespace,
                             writes_per_second=settings.limits.api_writes_per_second,
                             write_burst=settings.limits.api_write_burst)
    redis = redis_connect(settings.redis, None)
    said: list[str] = []
    server = WorkerServer(settings, kube, redis, consumer=consumer, say=said.append)
    PIPELINES[id(server)] = wire_pipelines(server)
    run = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.watch.synced.wait(), 20)
        yield server
    finally:
        server.stop.set()
        await asyncio.wait_for(run, 60)
        await kube.aclose()
        await redis.aclose()
        PIPELINES.pop(id(server), None)


PIPELINES: dict[int, Pipelines] = {}


def pipelines(server: WorkerServer) -> Pipelines:
    return PIPELINES[id(server)]


async def start(server: WorkerServer, p: Pipeline, build_id: str | None = None
                ) -> tuple[Build, bool]:
    """Start (or attach to) a build; the Build this server drives, whether it was created."""
    found, created = await pipelines(server).start(p, build_id)
    build = pipelines(server).get(found)
    assert build is not None, f"build {found} is not driven by this server"
    return build, created


async def finish(build: Build, timeout: float = 60) -> BuildStatus:
    return await asyncio.wait_for(build.wait(), timeout)


def events(build: Build) -> list[ProgressEvent]:
    """The build's progress journal as it is in Redis (a stream with ids 0-1, 0-2, …)."""
    import redis

    kw = build.store.redis.connection_pool.connection_kwargs
    with redis.Redis(host=kw["host"], port=kw["port"], db=kw.get("db", 0),
                     decode_responses=True) as r:
        got = r.xrange(build.store.key(build.id, "progress"))
    assert [int(i.split("-")[1]) for i, _ in got] == list(range(1, len(got) + 1)), \
        "sequence numbers 1, 2, …"
    return [event_of(f["e"]) for _, f in got]


def journal_ended(build: Build) -> bool:
    """The progress journal ends with its end marker, and so does the log journal."""
    import redis

    kw = build.store.redis.connection_pool.connection_kwargs
    with redis.Redis(host=kw["host"], port=kw["port"], db=kw.get("db", 0),
                     decode_responses=True) as r:
        progress = r.xrevrange(build.store.key(build.id, "progress"), count=1)
        logs = r.xrevrange(build.store.key(build.id, "logs"), count=1)
    return bool(progress and "end" in progress[0][1] and logs and "end" in logs[0][1])


def of(build: Build, stage: str) -> list[ProgressEvent]:
    return [e for e in events(build) if e.stage == stage]


def first(build: Build, stage: str, state: StageState) -> float:
    return next(e.time for e in of(build, stage) if e.stage_state is state
                and not e.message.startswith("worker "))


def states(status: BuildStatus) -> dict[str, StageState]:
    return {s.name: s.state for s in status.stages}


def build_pods(workers: Workers, build: str) -> list[Any]:
    return list(client.CoreV1Api(workers.cluster.api).list_namespaced_pod(
        workers.cluster.namespace, label_selector=f"{BUILD_LABEL}={build}").items)


async def no_pods_left(workers: Workers, build: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while build_pods(workers, build):
        assert time.monotonic() < deadline, "the build's pods were not deleted"
        await asyncio.sleep(0.3)


async def run_watching_pods(workers: Workers, p: Pipeline) -> tuple[Build, set[str]]:
    """Run a build to its end; the build and the names of every pod seen while it ran."""
    seen: set[str] = set()
    async with serving(workers) as server:
        build, _ = await start(server, p)
        while not build.done:
            seen.update(pod.metadata.name for pod in build_pods(workers, build.id))
            await asyncio.sleep(0.3)
        await no_pods_left(workers, build.id)
        return build, seen


def test_parallel_stages_overlap_and_a_stage_starts_when_its_own_needs_are_done(
        workers: Workers) -> None:
    p = pipeline(f"""\
        - name: slow
          annotations: {notes(6)}
        - name: quick
          annotations: {notes(1)}
        - name: after-quick
          needs: [quick]
          workers: 2
          annotations: {notes(1)}
        - name: last
          needs: [slow, after-quick]
          annotations: {notes(1)}
        """)

    async def main() -> tuple[Build, list[Any]]:
        async with serving(workers) as server:
            build, created = await start(server, p)
            assert created and build.id.startswith("b-")
            status = await finish(build)
            assert status.state is BuildState.SUCCEEDED, status
            seen = build_pods(workers, build.id)
            await no_pods_left(workers, build.id)
            return build, seen

    build, _ = asyncio.run(main())
    status = build.status()
    assert set(states(status).values()) == {StageState.SUCCEEDED}
    slow_start, quick_start = first(build, "slow", StageState.RUNNING), \
        first(build, "quick", StageState.RUNNING)
    slow_end = first(build, "slow", StageState.SUCCEEDED)
    assert abs(slow_start - quick_start) < 1.0, "independent stages start together"
    after = first(build, "after-quick", StageState.RUNNING)
    assert after < slow_end - 1.5, "after-quick started while slow still ran"
    assert first(build, "last", StageState.RUNNING) >= slow_end
    # progress: the first and last events carry every stage; each worker's facts are told
    evs = events(build)
    assert [s.name for s in evs[0].stages] == ["slow", "quick", "after-quick", "last"]
    assert evs[-1].build_state is BuildState.SUCCEEDED and len(evs[-1].stages) == 4
    assert journal_ended(build)
    workers_told = {(e.stage, e.worker_index, e.message.split(" ")[2].rstrip(",")) for e in evs
                    if e.message.startswith("worker ")}
    assert {("after-quick", 0, "running"), ("after-quick", 1, "running"),
            ("after-quick", 0, "succeeded"), ("after-quick", 1, "succeeded")} <= workers_told
    # logs kept per stage task before the pods were deleted
    for stage in ("slow", "quick", "after-quick", "last"):
        log = (workers.logs_dir / f"{task_key(f'{build.id}/{stage}')}.log").read_text()
        assert log.count("==> w-") == (2 if stage == "after-quick" else 1)


def test_retry_passes_and_a_failed_stage_skips_only_its_dependants(workers: Workers) -> None:
    p = pipeline(f"""\
        - name: flaky
          annotations: {notes(1, exit=4, fail=1)}
          retry: {{limit: 2, backoff_seconds: 1}}
        - name: after-flaky
          needs: [flaky]
          annotations: {notes(1)}
        - name: broken
          annotations: {notes(1, exit=3)}
          retry: {{limit: 1, exit_codes: [4]}}
        - name: after-broken
          needs: [broken]
          annotations: {notes(1)}
        - name: after-after
          needs: [after-broken, after-flaky]
          annotations: {notes(1)}
        """, fail_fast=False)
    build, seen = asyncio.run(run_watching_pods(workers, p))
    status = build.status()
    assert status.state is BuildState.FAILED
    assert states(status) == {"flaky": StageState.SUCCEEDED, "after-flaky": StageState.SUCCEEDED,
                              "broken": StageState.FAILED, "after-broken": StageState.SKIPPED,
                              "after-after": StageState.SKIPPED}
    flaky = {s.name: s for s in status.stages}["flaky"]
    assert flaky.attempt == 2 and "1 retry" in flaky.message
    flaky_key = task_key(f"{build.id}/flaky")
    assert {f"w-{flaky_key}-0-0", f"w-{flaky_key}-0-1"} <= seen, "a fresh pod name per attempt"
    retrying = [e for e in of(build, "flaky") if e.stage_state is StageState.RETRYING]
    assert len(retrying) == 1 and "exit 4" in retrying[0].message and "in 1s" in \
        retrying[0].message
    ended = next(e.time for e in of(build, "flaky") if e.message.startswith("worker 0 failed"))
    rerun = next(e.time for e in of(build, "flaky") if "running (attempt 1)" in e.message)
    assert rerun - ended >= 1.0, "the retry waited for its backoff"
    broken = {s.name: s for s in status.stages}["broken"]
    assert broken.attempt == 1 and "exit code 3" in broken.message   # 3 is not retried
    skipped = {e.stage: e.message for e in events(build) if e.stage_state is StageState.SKIPPED}
    assert skipped == {"after-broken": "skipped: stage broken failed",
                       "after-after": "skipped: stage broken failed"}
    # order: each stage's RUNNING before its end, a skip after the failure that caused it
    order = [(e.stage, e.stage_state) for e in events(build) if e.stage]
    assert order.index(("broken", StageState.FAILED)) < order.index(
        ("after-broken", StageState.SKIPPED))
    assert order.index(("flaky", StageState.RETRYING)) < order.index(
        ("flaky", StageState.SUCCEEDED)) < order.index(("after-flaky", StageState.RUNNING))


def test_fail_fast_cancels_the_running_stages_and_skips_the_rest(workers: Workers) -> None:
    p = pipeline(f"""\
        - name: broken
          annotations: {notes(1, exit=2)}
        - name: slow
          annotations: {notes(30)}
        - name: after-slow
          needs: [slow]
          annotations: {notes(1)}
        """)

    async def main() -> Build:
        async with serving(workers) as server:
            build, _ = await start(server, p)
            await finish(build, 20)
            await no_pods_left(workers, build.id)
            return build

    started = time.monotonic()
    build = asyncio.run(main())
    assert time.monotonic() - started < 25
    [entry] = workers.results()
    assert (entry["build_id"], entry["outcome"]) == (build.id, "failed")
    assert entry["message"] == "failed: stage(s) broken failed"
    status = build.status()
    assert status.state is BuildState.FAILED
    assert states(status) == {"broken": StageState.FAILED, "slow": StageState.CANCELLED,
                              "after-slow": StageState.SKIPPED}
    by = {s.name: s for s in status.stages}
    assert by["slow"].message == "cancelled: fail-fast: stage broken failed"
    assert by["after-slow"].message == "fail-fast: skipped: stage broken failed"


def test_a_stage_past_its_timeout_is_retried_then_fails(workers: Workers) -> None:
    p = pipeline(f"""\
        - name: hangs
          annotations: {notes(60)}
          timeout_seconds: 2
          retry: {{limit: 1, on: [timeout]}}
        - name: never
          needs: [hangs]
          annotations: {notes(1)}
        """)
    started = time.monotonic()
    build, seen = asyncio.run(run_watching_pods(workers, p))
    assert time.monotonic() - started < 30
    by = {s.name: s for s in build.status().stages}
    assert by["hangs"].state is StageState.FAILED
    assert by["hangs"].message == "timed out after 2s"
    assert by["hangs"].attempt == 2
    assert by["never"].state is StageState.SKIPPED
    key = task_key(f"{build.id}/hangs")
    assert {f"w-{key}-0-0", f"w-{key}-0-1"} <= seen
    assert any(e.stage_state is StageState.RETRYING and "timed out after 2s" in e.message
               for e in of(build, "hangs"))
    assert (workers.logs_dir / f"{key}.log").read_text().count("==> w-") == 2


def test_start_is_idempotent_by_build_id_and_cancel_stops_the_build(workers: Workers) -> None:
    p = pipeline(f"""\
        - name: long
          annotations: {notes(30)}
        - name: next
          needs: [long]
          annotations: {notes(1)}
        """)

    wide = pipeline(f"""\
        - name: wide
          workers: 3
          annotations: {notes(1)}
        """)

    async def main() -> tuple[Build, Build, bool]:
        async with serving(workers, limits={"max_pod_count": 2}) as server:
            with pytest.raises(ConfigError, match=r"test.yaml:\d+: stages: wide: workers 3 is "
                                                  "over this server's limit of 2"):
                await pipelines(server).start(wide)
            with pytest.raises(ConfigError, match="build id"):
                await pipelines(server).start(p, "no spaces please")
            with pytest.raises(UnknownBuild):
                await pipelines(server).cancel("ci-41")
            build, created = await start(server, p, "ci-42")
            again, created_again = await start(server, p, "ci-42")
            assert created and again is build
            assert pipelines(server).get("ci-42") is build
            deadline = time.monotonic() + 20
            while not any(pod.status.phase == "Running"
                          for pod in build_pods(workers, "ci-42")):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
            assert len(build_pods(workers, "ci-42")) == 1, "one start, one pod"
            cancelled = await asyncio.wait_for(pipelines(server).cancel("ci-42"), 20)
            await no_pods_left(workers, "ci-42")
            said: list[str] = getattr(server.say, "__self__")   # noqa: B009 (the bound list)
            assert "build ci-42: cancelled" in said, said    # said once, not "cancelled: …"
            return build, cancelled, created_again

    build, cancelled, created_again = asyncio.run(main())
    assert created_again is False and cancelled.state is BuildState.CANCELLED
    assert states(cancelled) == states(build.status())
    status = build.status()
    assert status.state is BuildState.CANCELLED
    assert states(status) == {"long": StageState.CANCELLED, "next": StageState.SKIPPED}
    assert events(build)[-1].build_state is BuildState.CANCELLED


def test_shutdown_hands_running_builds_over_and_another_server_finishes_them(
        workers: Workers) -> None:
    p = pipeline(f"""\
        - name: long
          annotations: {notes(6)}
        - name: next
          needs: [long]
          annotations: {notes(1)}
        """)

    async def main() -> tuple[Build, list[str], BuildStatus]:
        async with serving(workers, "c2", pipelines={"lease_seconds": 3}) as other:
            async with serving(workers, "c1", pipelines={"lease_seconds": 3}) as owner:
                build, _ = await start(owner, p)
                deadline = time.monotonic() + 20
                while not any(pod.status.phase == "Running"
                              for pod in build_pods(workers, build.id)):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
                pods = [pod.metadata.name for pod in build_pods(workers, build.id)]
                owner.stop.set()
                await asyncio.wait_for(build.wait(), 15)
                with pytest.raises(NotAccepting):
                    await pipelines(owner).start(p)
                # nothing cancelled: the pod runs on, the build is running, nobody holds it
                assert [pod.metadata.name for pod in build_pods(workers, build.id)] == pods
                assert (await pipelines(other).store.status(build.id)).state \
                    is BuildState.RUNNING
            deadline = time.monotonic() + 10
            while pipelines(other).get(build.id) is None:
                assert time.monotonic() < deadline, "the other server did not adopt the build"
                await asyncio.sleep(0.1)
            adopted = pipelines(other).get(build.id)
            assert adopted is not None
            status = await finish(adopted, 40)
            await no_pods_left(workers, build.id)
            return build, pods, status

    build, pods, status = asyncio.run(main())
    assert status.state is BuildState.SUCCEEDED, status
    assert {s.name: s.attempt for s in status.stages} == {"long": 1, "next": 1}
    evs = events(build)
    assert not [e for e in evs if e.stage_state is StageState.CANCELLED]
    assert any("adopted by c2" in e.message for e in evs)
    assert journal_ended(build)
    # the long stage's one pod ran once: one kept log, attempt 0
    log = (workers.logs_dir / f"{task_key(f'{build.id}/long')}.log").read_text()
    assert log.count("==> w-") == 1 and pods == [pods[0]]


def test_with_a_second_server_watching_the_same_pods_the_build_still_hears_every_stage(
        workers: Workers) -> None:
    p = pipeline(f"""\
        - name: flaky
          workers: 2
          annotations: {notes(1, fail=1)}
          retry: {{limit: 1}}
        - name: next
          needs: [flaky]
          annotations: {notes(1)}
        """)

    async def main() -> tuple[Build, list[str]]:
        async with serving(workers, "c1") as owner, serving(workers, "c2") as other:
            build, _ = await start(owner, p)
            status = await finish(build, 40)
            assert pipelines(other).driving == {}
            assert status.state is BuildState.SUCCEEDED, status
            await no_pods_left(workers, build.id)
            return build, await asyncio.to_thread(workers.results)

    build, results = asyncio.run(main())
    assert {s.name: s.attempt for s in build.status().stages} == {"flaky": 2, "next": 1}
    # one entry, for the build: its stages are not reported one by one
    [entry] = results
    assert (entry["task_id"], entry["build_id"], entry["pipeline"], entry["outcome"]) == (
        build.id, build.id, "test", "succeeded")
    assert entry["pods"] == "3" and entry["pods_succeeded"] == "3"
    assert json.loads(entry["stages"])["flaky"] == {
        "state": "succeeded", "attempt": 1, "message": "2 worker(s) succeeded, 2 retries"}
