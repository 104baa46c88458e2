"""The gRPC API server: TLS on the configured address, auth, the devscale.v1 services and
ottoscaler.v1's OttoscalerService, health and reflection, and a shutdown that says NOT_SERVING
before it stops accepting; with api.plaintext_listen, a second listener without TLS that serves
ottoscaler.v1 only (for Ottoscaler's CI server), behind the same auth.

Health follows the worker server's readiness (Redis and the API server reachable, as /healthz)
for "" and each devscale service; it needs no credentials (but, with mTLS, a client certificate:
the handshake comes first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.workers.api.auth import AuthInterceptor
from devtrip_scale.workers.api.otto_service import SERVICE as OTTO_SERVICE
from devtrip_scale.workers.api.otto_service import OttoscalerCompat
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2_grpc as otto_grpc
from devtrip_scale.workers.api.services import LogStreamingService, OttoscalerService, Streams
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from devtrip_scale.workers.config import ApiModel, plaintext_problem

if TYPE_CHECKING:
    from devtrip_scale.workers.executor import Pipelines
    from devtrip_scale.workers.server import WorkerServer

log = logging.getLogger("devscale.workers.api")

SERVICES = (*(pb.DESCRIPTOR.services_by_name[name].full_name
               for name in ("OttoscalerService", "LogStreamingService")), OTTO_SERVICE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_MESSAGE = 16 * 1024 * 1024      # a pipeline file, a status of many workers


@dataclass
class ApiServer:
    """A running gRPC API; `shutdown` ends it."""

    server: aio.Server
    port: int
    health: Any                     # grpc_health's aio HealthServicer
    auth: AuthInterceptor
    streams: Streams
    address: str
    say: Callable[[str], None] = field(default=lambda text: log.info("%s", text))
    stopped: bool = False
    follower: asyncio.Task[None] | None = None
    plain: aio.Server | None = None     # api.plaintext_listen: ottoscaler.v1 only, no TLS
    plain_port: int = 0
    pipelines: Pipelines | None = None  # the builds its calls start and read

    async def follow(self, ready: Callable[[], bool], every: float = 0.5) -> None:
        """Keep every health status at SERVING while `ready()` (the worker server reaches
        Redis and the API server), NOT_SERVING while not, as /healthz does."""
        last = None
        while True:
            status = SERVING if ready() else NOT_SERVING
            if status != last:
                for name in ("", *SERVICES):
                    await self.health.set(name, status)
                last = status
            await asyncio.sleep(every)

    async def not_serving(self) -> None:
        """Every health status NOT_SERVING from now on (the server is going away), while calls
        are still answered: the first step of a shutdown."""
        if self.follower is not None:
            self.follower.cancel()
            self.follower = None
        await self.health.enter_graceful_shutdown()

    async def shutdown(self, grace: float, drain: float = 0.0) -> None:
        """NOT_SERVING for every service at once; after `drain` seconds (time for load
        balancers and clients to notice, new calls still answered) stop accepting calls, let
        the calls in flight finish within `grace`, then cancel what is left."""
        if self.stopped:
            return
        self.stopped = True
        await self.not_serving()
        if drain > 0:
            await asyncio.sleep(drain)
        if self.streams.open:
            self.say(f"gRPC API stopping: {len(self.streams.open)} stream(s) open, waiting up "
                     f"to {grace:g}s")
        await asyncio.gather(self.server.stop(grace),
                             *([self.plain.stop(grace)] if self.plain is not None else []))
        self.say("gRPC API stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"api.tls.{what}: cannot read {path}: {e.strerror or e}") from None


def credentials(settings: ApiModel) -> grpc.ServerCredentials:
    """The server's TLS credentials; with mTLS, client certificates required and verified."""
    if settings.tls is None:
        raise ConfigError("api.tls: the API needs tls: {cert_file, key_file}; it never serves "
                          "plaintext")
    tls = settings.tls
    key, cert = _read(tls.key_file, "key_file"), _read(tls.cert_file, "cert_file")
    ca = _read(tls.client_ca_file, "client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=settings.needs_client_cert)


def _plaintext(settings: ApiModel, compat: OttoscalerCompat, auth: AuthInterceptor,
               checks: Any) -> tuple[aio.Server, int]:
    """A second server on api.plaintext_listen, sharing the engine, the auth interceptor and
    health: it serves ottoscaler.v1's OttoscalerService only (never devscale.v1)."""
    assert settings.plaintext_listen is not None
    problem = plaintext_problem(settings.plaintext_listen, settings.plaintext_allow_remote)
    if problem:
        raise ConfigError(f"api.{problem}")
    plain = aio.server(interceptors=[auth], options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.so_reuseport", 0)])
    otto_grpc.add_OttoscalerServiceServicer_to_server(  # type: ignore[no-untyped-call]
        compat, plain)
    health_pb2_grpc.add_HealthServicer_to_server(checks, plain)
    try:
        port = plain.add_insecure_port(settings.plaintext_listen)
    except RuntimeError as e:
        raise ConfigError(f"api.plaintext_listen {settings.plaintext_listen}: cannot listen "
                          f"there: {e}") from None
    if not port:
        raise ConfigError(f"api.plaintext_listen {settings.plaintext_listen}: cannot listen "
                          "there")
    return plain, port

def wire_pipelines(server: WorkerServer) -> Pipelines:
    """The builds on `server`'s task engine and Redis: leases kept and builds adopted from now
    on, handed over when the server stops."""
    from devtrip_scale.workers.executor import Pipelines

    s = server.settings
    pipelines = Pipelines.of(server, server.redis, s.redis.stream, s.pipelines,
                             s.limits.pod_count_limit)
    server.on_stop.append(pipelines.shutdown)
    pipelines.begin()
    return pipelines


async def start_api(server: WorkerServer, settings: ApiModel,
                    token: str | Sequence[str] | None, *, listen: str | None = None,
                    say: Callable[[str], None] | None = None,
                    pipelines: Pipelines | None = None) -> ApiServer:
    """Serve the gRPC API of `server` on `listen` (default: settings.listen; port 0 picks a
    free one, see ApiServer.port). `token`: the accepted bearer token(s) — required unless
    `auth: mtls`. `pipelines`: the builds (default: made here on the server's Redis, handed
    over on the server's shutdown)."""
    tokens = (token,) if isinstance(token, str) else tuple(token or ())
    tokens = tuple(t for t in tokens if t)
    if settings.needs_token and not tokens:
        raise ConfigError(f"the API needs a bearer token: set ${settings.token_env}")
    if not settings.needs_token:
        tokens = ()
    creds = credentials(settings)
    address = listen or settings.listen
    auth = AuthInterceptor(tokens)
    streams = Streams()
    grpc_server = aio.server(interceptors=[auth], options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 0)])
    if pipelines is None:
        pipelines = wire_pipelines(server)
    ottoscaler = OttoscalerService(server, streams, pipelines)
    pb_grpc.add_OttoscalerServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ottoscaler, grpc_server)
    pb_grpc.add_LogStreamingServiceServicer_to_server(  # type: ignore[no-untyped-call]
        LogStreamingService(ottoscaler, streams), grpc_server)
    compat = OttoscalerCompat(server, streams, pipelines)   # ottoscaler.v1 beside devscale.v1
    otto_grpc.add_OttoscalerServiceServicer_to_server(  # type: ignore[no-untyped-call]
        compat, grpc_server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, grpc_server)
    reflection.enable_server_reflection(
        (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server)
    try:
        port = grpc_server.add_secure_port(address, creds)
    except RuntimeError as e:
        raise ConfigError(f"api.listen {address}: cannot listen there: {e}") from None
    if not port:
        raise ConfigError(f"api.listen {address}: cannot listen there")
    plain, plain_port = None, 0
    if settings.plaintext_listen:
        plain, plain_port = _plaintext(settings, compat, auth, checks)
    await grpc_server.start()
    if plain is not None:
        await plain.start()
    api = ApiServer(grpc_server, port, checks, auth, streams, address, plain=plain,
                    plain_port=plain_port, pipelines=pipelines)
    if say is not None:
        api.say = say
    if plain is not None:
        where = str(settings.plaintext_listen).rpartition(":")[0]
        warning = (f"WARNING: plaintext gRPC listener on {where}:{plain_port} for "
                   f"{OTTO_SERVICE} only: no TLS, "
                   f"{'bearer token still required' if tokens else 'no authentication'}"
                   + ("; reachable from the network: deploy the NetworkPolicy of `devscale "
                      "manifests workers`" if settings.plaintext_allow_remote else
                      " (loopback only)"))
        log.warning("%s", warning)
        api.say(warning)
    for name in ("", *SERVICES):
        await checks.set(name, SERVING if server.ready else NOT_SERVING)
    api.follower = asyncio.create_task(api.follow(lambda: server.ready), name="api-health")
    mode = {"token": "bearer token", "mtls": "client certificate",
            "both": "client certificate and bearer token"}[settings.auth]
    api.say(f"gRPC API on {address} (TLS, {mode}; health and reflection on)")
    return api
