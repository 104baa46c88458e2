"""The small HTTP server of /healthz and /metrics: GET a path, get what its callable returns.

One asyncio server serves both wings: the worker server runs it on its own event loop (`serve`),
so its callables read the loop's state safely; `devscale run`, which is synchronous, runs it on
an event loop of its own in a daemon thread (`serve_in_thread`), so its callables must be safe
to call from that thread. An unknown path is 404 `not found`; a callable that fails is 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from http import HTTPStatus

log = logging.getLogger("devscale.http")

# (status, body, content type) of one answer
Reply = tuple[int, bytes, str]
Routes = Mapping[str, Callable[[], Reply]]
TEXT = "text/plain"
METRICS = "text/plain; version=0.0.4"     # the Prometheus text exposition format
REQUEST_SECONDS = 10.0                    # a client that sends no full request head in time


def _answer(routes: Routes, method: str, path: str) -> Reply:
    if method not in ("GET", "HEAD"):
        return 405, b"method not allowed\n", TEXT
    route = routes.get(path)
    if route is None:
        return 404, b"not found\n", TEXT
    try:
        return route()
    except Exception:
        log.exception("GET %s failed", path)
        return 500, b"internal error\n", TEXT


async def serve(host: str, port: int, routes: Routes) -> asyncio.Server:
    """Listen on host:port (OSError with the system's words when it cannot) and answer each path
    from `routes`; each callable runs on this event loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_SECONDS)
            line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            method, path = [*line.split(" "), "", ""][:2]
            status, body, kind = _answer(routes, method, path)
            reason = HTTPStatus(status).phrase
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    try:
        return await asyncio.start_server(handle, host, port)
    except OSError as e:       # asyncio's words wrap the system's ("address already in use")
        if e.errno is None:
            raise
        raise OSError(e.errno, os.strerror(e.errno)) from None


class ThreadedServer:
    """`serve` on an event loop of its own, in a daemon thread; `shutdown()` stops it."""

    def __init__(self, host: str, port: int, routes: Routes) -> None:
        self._loop = asyncio.new_event_loop()
        started: Future[asyncio.Server] = Future()
        self._thread = threading.Thread(target=self._run, args=(host, port, routes, started),
                                        name="devscale-http", daemon=True)
        self._thread.start()
        self._server = started.result()          # raises the OSError of a failed listen

    def _run(self, host: str, port: int, routes: Routes, started: Future[asyncio.Server]
             ) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._loop.run_until_complete(serve(host, port, routes))
        except BaseException as e:
            started.set_exception(e)
            self._loop.close()
            return
        started.set_result(server)
        try:
            self._loop.run_forever()
        finally:
            server.close()
            answering = asyncio.all_tasks(self._loop)
            for task in answering:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*answering, return_exceptions=True))
            self._loop.close()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when asked for 0)."""
        return int(self._server.sockets[0].getsockname()[1])

    def shutdown(self) -> None:
        """Stop listening and end the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def serve_in_thread(host: str, port: int, routes: Routes) -> ThreadedServer:
    """`serve` for a synchronous program: listening when this returns (OSError when it
    cannot), answering on a daemon thread."""
    return ThreadedServer(host, port, routes)
