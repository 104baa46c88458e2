"""A fake Otto-handler for the tests of the push direction: Ottoscaler's CI server side of
OttoHandlerLogService (grpc.aio, TLS), recording what devscale forwards."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2_grpc as otto_grpc
from testbed.net import free_port
from tests.workers.api.conftest import Pki

HANDLER_TOKEN = "otto-" + "9f3c1e7a5b2d4680"
Ack = otto.LogForwardResponse


@dataclass
class FakeOttoHandler(otto_grpc.OttoHandlerLogServiceServicer):
    """Keeps a line once by its sequence number (a resend after a break is ACKed, not kept
    again); RETRY the first time it sees a sequence of `retry`, DROP those of `drop`, a
    throttle on those of `throttle`; wants `authorization: Bearer HANDLER_TOKEN`."""

    retry: frozenset[int] = frozenset()
    drop: frozenset[int] = frozenset()
    throttle: frozenset[int] = frozenset()

    kept: list[tuple[int, otto.WorkerLogEntry]] = field(default_factory=list)
    dropped: list[tuple[int, otto.WorkerLogEntry]] = field(default_factory=list)
    retried: set[int] = field(default_factory=set)
    resent: int = 0
    statuses: list[otto.WorkerStatusNotification] = field(default_factory=list)
    unauthenticated: int = 0
    last: int = 0

    def _authorised(self, context: Any) -> bool:
        ok = ("authorization", f"Bearer {HANDLER_TOKEN}") in tuple(
            context.invocation_metadata() or ())
        self.unauthenticated += not ok
        return ok

    async def ForwardWorkerLogs(self, requests: Any, context: Any) -> Any:
        if not self._authorised(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
        async for entry in requests:
            seq = int(entry.metadata["sequence"])
            if seq <= self.last:
                self.resent += 1
                yield Ack(status=Ack.ACK, sequence=seq)
            elif seq in self.retry and seq not in self.retried:
                self.retried.add(seq)
                yield Ack(status=Ack.RETRY, sequence=seq, message="busy")
            elif seq in self.drop:
                self.last = seq
                self.dropped.append((seq, entry))
                yield Ack(status=Ack.DROP, sequence=seq, message="not wanted")
            else:
                self.last = seq
                self.kept.append((seq, entry))
                yield Ack(status=Ack.ACK, sequence=seq,
                          throttle_ms=200 if seq in self.throttle else 0)

    async def NotifyWorkerStatus(self, request: otto.WorkerStatusNotification,
                                 context: Any) -> otto.WorkerStatusAck:
        if not self._authorised(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
        self.statuses.append(request)
        return otto.WorkerStatusAck(status=otto.WorkerStatusAck.RECEIVED)


class FakeHandlerServer:
    """The fake handler's gRPC server (TLS, the test bed's certificate) on an event loop of its
    own in a thread; stop() and start() again on the same port."""

    def __init__(self, pki: Pki, servicer: FakeOttoHandler | None = None) -> None:
        self.pki = pki
        self.port = free_port()
        self.servicer = servicer or FakeOttoHandler()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> None:
        self.server = aio.server()
        otto_grpc.add_OttoHandlerLogServiceServicer_to_server(self.servicer, self.server)
        key = (self.pki.dir / "server.key").read_bytes()
        cert = (self.pki.dir / "server.pem").read_bytes()
        self.server.add_secure_port(f"127.0.0.1:{self.port}",
                                    grpc.ssl_server_credentials([(key, cert)]))
        await self.server.start()

    def start(self) -> None:
        self._call(self._start())

    def stop(self) -> None:
        self._call(self.server.stop(0))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
