"""The ottoscaler.v1 OttoscalerService: Ottoscaler's CI server served by devscale's engine.

Each call goes through the worker server's public methods, as the devscale.v1 calls do:
ScaleUp is `start_task` (same cap, deterministic pod names; a task seen before answers
ALREADY_PROCESSED and creates nothing), ScaleDown is `stop_workers` (keep `worker_count`:
pending pods first) or `cancel_task` (0), GetWorkerStatus reads the pod watch, and
ExecutePipeline runs a Pipeline built from the inline stages on the builds (`Pipelines`) — the same
executor, DAG and progress journal as a pipeline file; `pipeline_id` is the build id, so calling
again attaches and replays the build's progress from its start. Bad input ends the call
INVALID_ARGUMENT (naming the stage id and the field) before anything runs; an engine failure
is Ottoscaler's ScaleResponse status FAILED with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
from redis.exceptions import RedisError

from devtrip_scale.core.errors import ConfigError, DevscaleError
from devtrip_scale.workers.api import otto_convert as oc
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2_grpc as otto_grpc
from devtrip_scale.workers.api.services import Streams, entry_id
from devtrip_scale.workers.executor import NotAccepting, Pipelines, UnknownBuild
from devtrip_scale.workers.tasks import pod_name, task_key

if TYPE_CHECKING:
    from devtrip_scale.workers.server import WorkerServer

log = logging.getLogger("devscale.workers.api")
Context: TypeAlias = Any      # grpc.aio.ServicerContext (grpcio ships no types)
SERVICE = otto.DESCRIPTOR.services_by_name["OttoscalerService"].full_name


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")


def _answer(status: int, message: str, started: float, names: list[str] | None = None,
            count: int = 0) -> otto.ScaleResponse:
    return otto.ScaleResponse(status=status, message=message,  # type: ignore[arg-type]
                              processed_count=count, worker_pod_names=names or [],
                              started_at=oc.rfc3339(started),
                              completed_at=oc.rfc3339(time.time()))


class OttoscalerCompat(otto_grpc.OttoscalerServiceServicer):
    def __init__(self, server: WorkerServer, streams: Streams, pipelines: Pipelines) -> None:
        self.server = server
        self.streams = streams
        self.pipelines = pipelines
        self._jobs: set[asyncio.Future[Any]] = set()    # scale-ups outliving their call

    async def _pods(self, task_id: str) -> list[str]:
        state = await self.server.store.state(task_key(task_id))
        if state.spec is None:
            return []
        return [pod_name(state.spec.task_id, i, state.attempt(i))
                for i in range(state.spec.pod_count)]

    async def ScaleUp(self, request: otto.ScaleRequest, context: Context) -> otto.ScaleResponse:
        from devtrip_scale.workers.engine import Cancelled, Stopping

        s, started = self.server, time.time()
        try:
            spec = oc.scale_up_spec(request, entry_id(), s.settings.worker,
                                    s.settings.limits.pod_count_limit)
        except oc.BadRequest as e:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        key = task_key(spec.task_id)
        try:
            seen = (await s.store.state(key)).spec is not None or await s.store.is_done(key)
            if seen:
                return _answer(otto.ScaleResponse.ALREADY_PROCESSED,
                               f"task {spec.task_id} was already started: nothing created",
                               started, await self._pods(spec.task_id))
            created: list[str] = []
            # a client that goes away does not cut the scale-up short (as devscale.v1's)
            job = asyncio.ensure_future(s.start_task(spec, ticket=spec.entry_id,
                                                     created=created))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            await asyncio.shield(job)
            names = await self._pods(spec.task_id)
        except Stopping:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down; "
                         "call again (nothing is created twice)")
        except Cancelled:
            return _answer(otto.ScaleResponse.FAILED, f"task {spec.task_id} was cancelled "
                           "(ScaleDown to 0) while it waited for room", started)
        except (DevscaleError, RedisError, OSError) as e:
            log.warning("ottoscaler ScaleUp %s: %s", spec.task_id, e)
            return _answer(otto.ScaleResponse.FAILED, str(e) or type(e).__name__, started)
        if not created:
            return _answer(otto.ScaleResponse.ALREADY_PROCESSED, f"task {spec.task_id}: its "
                           "pods existed already: nothing created", started, names)
        s.say(f"task {spec.task_id}: ScaleUp over ottoscaler.v1, {len(created)} of "
              f"{len(names)} pod(s) created")
        status = otto.ScaleResponse.SUCCESS if len(created) == len(names) else \
            otto.ScaleResponse.PARTIAL_SUCCESS
        return _answer(status, f"{len(created)} worker pod(s) created", started, names,
                       len(created))

    async def ScaleDown(self, request: otto.ScaleRequest,
                        context: Context) -> otto.ScaleResponse:
        s, started = self.server, time.time()
        if not request.task_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         "task_id is required: the task to scale down")
        if request.worker_count < 0:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"worker_count {request.worker_count} is negative: it is the number "
                         "of workers to keep (0 cancels the task)")
        try:
            pods = oc.task_pods(s.watch.pods.values(), request.task_id)
            if request.worker_count == 0:
                live = [str(p["metadata"]["name"]) for p in oc.surplus(pods, 0)]
                if not await s.cancel_task(request.task_id):
                    return _answer(otto.ScaleResponse.ALREADY_PROCESSED,
                                   f"task {request.task_id} is over already", started)
                return _answer(otto.ScaleResponse.SUCCESS, f"task {request.task_id} "
                               f"cancelled: {len(live)} worker pod(s) stopped", started, live,
                               len(live))
            key = task_key(request.task_id)
            if await s.store.is_done(key):
                return _answer(otto.ScaleResponse.ALREADY_PROCESSED,
                               f"task {request.task_id} is over already", started)
            if (await s.store.state(key)).spec is None:
                return _answer(otto.ScaleResponse.FAILED, f"task {request.task_id} is not "
                               "known here: nothing to scale down (0 would cancel it ahead)",
                               started)
            chosen = [str(p["metadata"]["name"]) for p in oc.surplus(pods,
                                                                       request.worker_count)]
            stopped = await s.stop_workers(request.task_id, chosen)
        except (DevscaleError, RedisError, OSError) as e:
            log.warning("ottoscaler ScaleDown %s: %s", request.task_id, e)
            return _answer(otto.ScaleResponse.FAILED, str(e) or type(e).__name__, started)
        return _answer(otto.ScaleResponse.SUCCESS,
                       f"{len(stopped)} worker pod(s) stopped, at most {request.worker_count} "
                       "kept", started, stopped, len(stopped))

    async def GetWorkerStatus(self, request: otto.WorkerStatusRequest,
                              context: Context) -> otto.WorkerStatusResponse:
        s = self.server
        if not s.watch.synced.is_set():
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the pod watch has not listed the "
                         f"pods yet ({s.watch.problem or 'starting'})")
        try:
            return oc.worker_status(s.watch.pods.values(), request)
        except oc.BadRequest as e:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def ExecutePipeline(self, request: otto.PipelineRequest,
                              context: Context) -> AsyncIterator[otto.PipelineProgress]:
        s, pipelines = self.server, self.pipelines
        try:
            exists = bool(request.pipeline_id) and \
                await pipelines.store.exists(request.pipeline_id)
        except (RedisError, OSError) as e:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(e))
        build_id = request.pipeline_id
        if not exists:      # a build id seen before attaches, on any replica
            try:
                pipeline = oc.pipeline_of(request, s.settings.worker,
                                          s.settings.limits.pod_count_limit)
                build_id, _ = await pipelines.start(pipeline, request.pipeline_id or None)
            except oc.BadRequest as e:
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
            except ConfigError as e:
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                             f"pipeline_id: {e}" if "build id" in str(e) else str(e))
            except NotAccepting as e:
                await _abort(context, grpc.StatusCode.UNAVAILABLE, str(e))
            except (DevscaleError, RedisError, OSError) as e:
                await _abort(context, grpc.StatusCode.UNAVAILABLE, str(e))
        with self.streams.track(f"ottoscaler progress {build_id}"):
            reader = pipelines.store.progress(build_id, 0, stop=s.stop)
            try:
                status = await pipelines.status(build_id)
                view = oc.ProgressView(build_id, [st.name for st in status.stages])
                async for item in reader:
                    now = {st.name: st for st in (await pipelines.status(build_id)).stages}
                    yield view.message(item, now, time.time())
            except UnknownBuild as e:
                await _abort(context, grpc.StatusCode.NOT_FOUND, str(e))
            except (RedisError, OSError) as e:
                await _abort(context, grpc.StatusCode.UNAVAILABLE, str(e))
            finally:
                await reader.aclose()
