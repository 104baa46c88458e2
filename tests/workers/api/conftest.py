"""The gRPC API's test bed: a WorkerServer in this process (real kube-apiserver + KWOK, real
Redis) with `start_api` serving it over real TLS on loopback (certificates by trustme), run on an
event loop in a background thread so that tests call it with grpcio's ordinary sync client."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import trustme

from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import SELECTOR
from devtrip_scale.workers.api.server import ApiServer, start_api
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from devtrip_scale.workers.config import WorkersSettings
from devtrip_scale.workers.executor import Pipelines
from devtrip_scale.workers.intake import connect as redis_connect
from devtrip_scale.workers.server import WorkerServer
from testbed.redis import Redis
from tests.conftest import Cluster
from tests.workers.conftest import worker_config

T = TypeVar("T")
TOKEN = "tok-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Pki:
    """A CA, the server's certificate, a client certificate it signed, and one it did not."""

    dir: Path
    ca: trustme.CA
    stranger: trustme.CA

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def client(self, ca: trustme.CA | None = None) -> tuple[bytes, bytes]:
        """(key, certificate chain) of a client certificate."""
        leaf = (ca or self.ca).issue_cert("client@devscale.test", common_name="ci-client")
        return leaf.private_key_pem.bytes(), b"".join(b.bytes() for b in leaf.cert_chain_pems)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, stranger = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(tmp_path / "server.pem"), append=True)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return Pki(tmp_path, ca, stranger)


@dataclass
class ApiBed:
    """A WorkerServer and its gRPC API, on an event loop of their own (a thread)."""

    cluster: Cluster
    pki: Pki
    settings: WorkersSettings
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    thread: threading.Thread | None = None
    worker: WorkerServer | None = None
    api: ApiServer | None = None
    said: list[str] = field(default_factory=list)
    _run: asyncio.Task[None] | None = None
    _clients: list[Any] = field(default_factory=list)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def pipelines(self) -> Pipelines:
        """The builds of the API (in Redis; driven here while this server holds their lease)."""
        assert self.api is not None and self.api.pipelines is not None
        return self.api.pipelines

    def builds(self) -> list[str]:
        """Every build id the store knows, running or ended."""
        store = self.pipelines.store

        async def known() -> list[str]:
            ended: list[str] = await store.redis.zrange(  # type: ignore[assignment]
                store.ended_key, 0, -1)
            return sorted({*await store.running(), *ended})

        return self.call(known())

    @property
    def port(self) -> int:
        assert self.api is not None
        return self.api.port

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def start(self, kubeconfig: Path, token: str | None, ready: bool = True) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-bed",
                                       daemon=True)
        self.thread.start()
        self.call(self._start(kubeconfig, token, ready))

    async def _start(self, kubeconfig: Path, token: str | None, ready: bool) -> None:
        s = self.settings
        kube = AsyncKube.connect(str(kubeconfig), None, s.namespace)
        redis = redis_connect(s.redis)
        self._clients = [kube, redis]
        self.worker = WorkerServer(s, kube, redis, consumer="api-test", say=self.said.append)
        self._run = asyncio.create_task(self.worker.run())
        for _ in range(300 if ready else 0):
            if self.worker.ready:
                break
            await asyncio.sleep(0.1)
        else:
            if ready:
                raise RuntimeError(f"worker server not ready: {self.worker.health()}")
        self.api = await start_api(self.worker, s.api, token, listen="127.0.0.1:0",
                                   say=self.said.append)

    async def _stop(self) -> None:
        if self.api is not None:
            await self.api.shutdown(1)
        if self.worker is not None and self._run is not None:
            self.worker.stop.set()
            await self._run
        for client in self._clients:
            await client.aclose()

    def stop(self) -> None:
        if self.thread is None:
            return
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.thread = None

    # ------------------------------------------------------------ clients

    def channel(self, token: str | None = TOKEN, cert: tuple[bytes, bytes] | None = None,
                ca: bytes | None = None) -> grpc.Channel:
        """A TLS channel to the API; `token` sent as `authorization: Bearer …` on every call."""
        key, chain = cert if cert is not None else (None, None)
        creds = grpc.ssl_channel_credentials(ca or self.pki.ca_pem, key, chain)
        if token is not None:
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(token))
        return grpc.secure_channel(self.address, creds)

    def ottoscaler(self, **kwargs: Any) -> pb_grpc.OttoscalerServiceStub:
        return pb_grpc.OttoscalerServiceStub(self.channel(**kwargs))

    def pods(self) -> list[Any]:
        from kubernetes import client

        return list(client.CoreV1Api(self.cluster.api).list_namespaced_pod(
            self.cluster.namespace, label_selector=SELECTOR).items)


StartApi = Callable[..., ApiBed]


@pytest.fixture
def api_bed(cluster: Cluster, redis_server: Redis, admin_kubeconfig: Path, pki: Pki,
            tmp_path: Path) -> Iterator[StartApi]:
    """start(auth="token", token=TOKEN, run_seconds=60, kubeconfig=admin, ready=True (wait for
    Redis and the watch before serving), **workers.yaml overrides) → ApiBed."""
    beds: list[ApiBed] = []

    def start(auth: str = "token", token: str | None = TOKEN, run_seconds: float = 60,
              kubeconfig: Path | None = None, ready: bool = True, **overrides: Any) -> ApiBed:
        tag = f"a{uuid.uuid4().hex[:6]}"
        tls = {"cert_file": str(pki.dir / "server.pem"), "key_file": str(pki.dir / "server.key"),
               "client_ca_file": str(pki.dir / "ca.pem")}
        doc = worker_config(cluster.namespace, redis_server.url, tag, tmp_path / "logs",
                            run_seconds=run_seconds, **overrides)
        doc["api"] = {**doc.get("api", {}), "enabled": True, "auth": auth, "tls": tls}
        bed = ApiBed(cluster, pki, WorkersSettings.model_validate(doc))
        beds.append(bed)
        bed.start(kubeconfig or admin_kubeconfig, token, ready)
        return bed

    yield start
    for bed in beds:
        bed.stop()
