"""The devscale.v1 servicers: each RPC run through the worker server's own machinery.

ScaleUp and ScaleDown go the way a stream entry goes (`WorkerServer.scale_up/scale_down`), so
pods are created under the same cap with the same deterministic names, and a repeated call
creates nothing. Status comes from the watch's pod cache; builds from Redis through `Pipelines`
(executor.py), so any replica answers for any build; worker logs from `server.logrelay`.
Streaming handlers are async generators that close what they read in `finally` (a client that
goes away shows up as CancelledError), and read journals at the client's pace: nothing is queued
for a slow client. A replica shutting down ends its build streams with UNAVAILABLE (the client
resumes on another replica from the last sequence it saw).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
from redis.exceptions import RedisError

from devtrip_scale.core.errors import ConfigError, DevscaleError
from devtrip_scale.workers import TASK_LABEL
from devtrip_scale.workers.api import convert
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from devtrip_scale.workers.executor import NotAccepting, Pipelines, UnknownBuild, stage_task_id
from devtrip_scale.workers.journal import Missed
from devtrip_scale.workers.pipeline import load_pipeline_text
from devtrip_scale.workers.progress import BuildState
from devtrip_scale.workers.requests import Rejected
from devtrip_scale.workers.store import TaskState
from devtrip_scale.workers.tasks import classify, pod_name, task_key

if TYPE_CHECKING:
    from devtrip_scale.workers.server import WorkerServer

log = logging.getLogger("devscale.workers.api")
Context: TypeAlias = Any      # grpc.aio.ServicerContext (grpcio ships no types)


def _stage_of(note: str, build_id: str, stages: Any) -> bool:
    """Whether a silent pod's note is of one of `stages` (pod names carry the stage's task)."""
    pod = note.partition(":")[0]
    return any(pod.startswith(pod_name(stage_task_id(build_id, s), 0, 0).rsplit("-", 2)[0] + "-")
               for s in stages)


def entry_id() -> str:
    """The entry id of a request that came as a gRPC call (unique per call; marks its origin)."""
    return f"{convert.GRPC_ENTRY_PREFIX}{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with `code` and `message` (context.abort raises; this says so to mypy)."""
    await context.abort(code, message)
    raise AssertionError("context.abort returned")


async def _fail(context: Context, error: BaseException) -> NoReturn:
    await _abort(context, convert.status_code(error), str(error) or type(error).__name__)


def _settle(job: asyncio.Future[Any]) -> None:
    """A scale-up's error is logged even when its caller has gone (never lost)."""
    if not job.cancelled() and job.exception() is not None:
        log.warning("ScaleUp: %s", job.exception())


class Streams:
    """The streaming calls now open (for shutdown messages and the leak tests)."""

    def __init__(self) -> None:
        self.open: set[str] = set()

    @contextlib.contextmanager
    def track(self, what: str) -> Any:
        key = f"{what}#{uuid.uuid4().hex[:6]}"
        self.open.add(key)
        try:
            yield
        finally:
            self.open.discard(key)


class OttoscalerService(pb_grpc.OttoscalerServiceServicer):
    def __init__(self, server: WorkerServer, streams: Streams, pipelines: Pipelines) -> None:
        self.server = server
        self.streams = streams
        self.pipelines = pipelines
        self._jobs: set[asyncio.Future[Any]] = set()   # scale-ups outliving their call

    # ---------------------------------------------------------------- workers

    async def ScaleUp(self, request: pb.ScaleUpRequest, context: Context) -> pb.ScaleUpResponse:
        from devtrip_scale.workers.engine import Cancelled, Stopping

        s = self.server
        req = convert.scale_up_request(request, entry_id(), s.settings.limits.pod_count_limit)
        if isinstance(req, Rejected):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, req.reason)
        created: list[str] = []

        async def work() -> tuple[str, TaskState]:
            try:
                result = await s.scale_up(req, created)
            except Cancelled:
                result = "cancelled"
            return result, await s.store.state(task_key(req.task_id))

        # A client that goes away (or whose deadline passes) does not cut the scale-up short:
        # it completes as a stream entry would, never leaving a half-admitted request in the
        # cap's queue; a retry then creates nothing new.
        job = asyncio.ensure_future(work())
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        job.add_done_callback(_settle)
        try:
            result, state = await asyncio.shield(job)
        except Stopping:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down; "
                         "call again (nothing was created twice)")
        except (DevscaleError, RedisError, OSError) as e:
            await _fail(context, e)
        if result == "duplicate":
            await _abort(context, grpc.StatusCode.ALREADY_EXISTS, f"task {req.task_id} has "
                         "already ended and been reported; use a new task_id")
        if result == "cancelled":
            await _abort(context, grpc.StatusCode.ABORTED, f"task {req.task_id} was cancelled "
                         "(ScaleDown); use a new task_id")
        pods = [] if state.spec is None else [
            pod_name(state.spec.task_id, i, state.attempt(i)) for i in range(state.spec.pod_count)]
        if result == "acked":
            s.say(f"task {req.task_id}: ScaleUp over gRPC, {len(created)} of {len(pods)} pod(s) "
                  "created")
        return pb.ScaleUpResponse(task_id=req.task_id, pods=pods, created=len(created))

    async def ScaleDown(self, request: pb.ScaleDownRequest,
                        context: Context) -> pb.ScaleDownResponse:
        s = self.server
        req = convert.scale_down_request(request, entry_id())
        if isinstance(req, Rejected):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, req.reason)
        key = task_key(req.task_id)
        # the split scale_down makes: live pods of the task, pending ones first
        live = [p for p in s.watch.pods.values()
                if p["metadata"]["labels"].get(TASK_LABEL) == key and classify(p) is None]
        pending = sum((p.get("status") or {}).get("phase") in (None, "Pending") for p in live)
        try:
            result = await s.scale_down(req)
        except (DevscaleError, RedisError, OSError) as e:
            await _fail(context, e)
        if result == "duplicate":     # already over: nothing to cancel
            return pb.ScaleDownResponse(task_id=req.task_id)
        return pb.ScaleDownResponse(task_id=req.task_id, pending_deleted=pending,
                                    running_deleted=len(live) - pending)

    async def GetWorkerStatus(self, request: pb.WorkerStatusRequest,
                              context: Context) -> pb.WorkerStatusResponse:
        s = self.server
        if not s.watch.synced.is_set():
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the pod watch has not listed the "
                                f"pods yet ({s.watch.problem or 'starting'})")
        return convert.worker_status(s.watch.pods.values(), request.task_id, s.capacity)

    # ---------------------------------------------------------------- pipelines

    async def _build(self, context: Context, build_id: str, wait: float = 0.0) -> str:
        """The build id, once the build exists (waiting up to `wait` seconds for one being
        created), else NOT_FOUND."""
        if not build_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "build_id is required")
        try:
            found = await self.pipelines.store.wait_exists(build_id, wait)
        except (RedisError, OSError) as e:
            await _fail(context, e)
        if not found:
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"no build {build_id!r} (never "
                         "started, or no longer kept)")
        return build_id

    async def _stopping(self, context: Context, build_id: str, last: int) -> None:
        if self.server.stop.is_set():
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "this replica is shutting down; "
                         f"build {build_id} goes on: resume after sequence {last} on another "
                         "replica")

    async def ExecutePipeline(self, request: pb.ExecutePipelineRequest,
                              context: Context) -> AsyncIterator[pb.PipelineProgress]:
        if request.pipeline_yaml:
            try:
                pipeline = load_pipeline_text(request.pipeline_yaml,
                                              request.file_name or "pipeline.yaml")
            except ConfigError as e:
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
            try:
                build_id, _ = await self.pipelines.start(pipeline, request.build_id or None)
            except NotAccepting as e:
                await _abort(context, grpc.StatusCode.UNAVAILABLE, str(e))
            except (DevscaleError, RedisError, OSError) as e:
                await _fail(context, e)
        else:
            build_id = await self._build(context, request.build_id, 2.0)
        last, ended = request.after_sequence, False
        with self.streams.track(f"progress {build_id}"):
            reader = self.pipelines.store.progress(build_id, request.after_sequence,
                                                   stop=self.server.stop)
            try:
                async for item in reader:
                    if not isinstance(item, Missed):
                        last = item[0]
                        ended = item[1].build_state is not BuildState.RUNNING and \
                            bool(item[1].stages)
                    yield convert.progress(item, build_id)
            except (RedisError, OSError) as e:
                await _fail(context, e)
            finally:
                await reader.aclose()
        if not ended:
            await self._stopping(context, build_id, last)

    async def GetPipelineStatus(self, request: pb.PipelineStatusRequest,
                                context: Context) -> pb.PipelineStatus:
        build_id = await self._build(context, request.build_id)
        try:
            return convert.pipeline_status(await self.pipelines.status(build_id))
        except UnknownBuild as e:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(e))
        except (RedisError, OSError) as e:
            await _fail(context, e)

    async def CancelPipeline(self, request: pb.CancelPipelineRequest,
                             context: Context) -> pb.PipelineStatus:
        build_id = await self._build(context, request.build_id)
        try:
            status = await self.pipelines.cancel(build_id)
        except UnknownBuild as e:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(e))
        except (DevscaleError, RedisError, OSError) as e:
            await _fail(context, e)
        return convert.pipeline_status(status)


class LogStreamingService(pb_grpc.LogStreamingServiceServicer):
    def __init__(self, ottoscaler: OttoscalerService, streams: Streams) -> None:
        self.ottoscaler = ottoscaler
        self.server = ottoscaler.server
        self.streams = streams

    async def StreamWorkerLogs(self, request: pb.WorkerLogsRequest,
                               context: Context) -> AsyncIterator[pb.LogEntry]:
        if not request.task_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "task_id is required")
        # a build stage's task whose pods are gone (or were never seen here): its lines as
        # the build's log in Redis keeps them, on any replica
        build_id, _, stage = request.task_id.partition("/")
        key = task_key(request.task_id)
        if stage and not any((p["metadata"].get("labels") or {}).get(TASK_LABEL) == key
                             for p in self.server.watch.pods.values()):
            try:
                kept = await self.ottoscaler.pipelines.store.exists(build_id)
            except (RedisError, OSError) as e:
                await _fail(context, e)
            if kept:
                with self.streams.track(f"worker logs {request.task_id}"):
                    async for entry in self._kept_task_lines(request, build_id):
                        yield entry
                return
        with self.streams.track(f"worker logs {request.task_id}"):
            lines = self.server.logrelay.task_lines(task_key(request.task_id), request.pod or None,
                                     request.follow)
            seq = 0
            try:
                async for item in lines:
                    if isinstance(item, Missed):
                        yield pb.LogEntry(sequence=seq, task_id=request.task_id,
                                          missed=item.count)
                        continue
                    seq += 1
                    yield convert.log_entry((seq, item))
            finally:
                await lines.aclose()

    async def _kept_task_lines(self, request: pb.WorkerLogsRequest, build_id: str
                               ) -> AsyncIterator[pb.LogEntry]:
        reader = self.ottoscaler.pipelines.store.logs(build_id, 0, follow=request.follow,
                                                      stop=self.server.stop)
        seq = 0
        try:
            async for item in reader:
                if isinstance(item, Missed):
                    yield pb.LogEntry(sequence=seq, task_id=request.task_id, missed=item.count)
                    continue
                line = item[1]
                if line.task_id == request.task_id and (not request.pod or
                                                        line.pod == request.pod):
                    seq += 1
                    yield convert.log_entry((seq, line))
        finally:
            await reader.aclose()

    async def StreamBuildLogs(self, request: pb.BuildLogsRequest,
                              context: Context) -> AsyncIterator[pb.LogEntry]:
        # a follower may ask as the build is being created (`pipeline run --build-id` opens
        # its logs beside its ExecutePipeline call): wait a little for it
        build_id = await self.ottoscaler._build(context, request.build_id,
                                                10.0 if request.follow else 0.0)
        last, ended, sent = request.after_sequence, False, 0
        with self.streams.track(f"build logs {build_id}"):
            reader = self.ottoscaler.pipelines.store.logs(
                build_id, request.after_sequence, follow=request.follow, stop=self.server.stop)
            try:
                async for item in reader:
                    if not isinstance(item, Missed):
                        last = item[0]
                    if isinstance(item, Missed) or convert.wanted(item[1], request.stages):
                        sent += 1
                        yield convert.log_entry(item, build_id)
                ended = not request.follow or not self.server.stop.is_set()
            except (RedisError, OSError) as e:
                await _fail(context, e)
            finally:
                await reader.aclose()
        if not ended:
            await self.ottoscaler._stopping(context, build_id, last)
        elif not sent:   # an empty log is said, with the API's reason (kept with the build)
            silent = await self.ottoscaler.pipelines.store.silent(build_id)
            context.set_trailing_metadata(tuple(
                (convert.SILENT_POD_KEY, note) for note in silent
                if not request.stages or _stage_of(note, build_id, request.stages)))
