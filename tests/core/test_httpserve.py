"""core.httpserve, the /healthz and /metrics server of both wings: each path answers what its
callable returns (status, body, content type), an unknown path is 404, a callable that fails is
500 and the server goes on, HEAD has no body, other methods are 405; on an event loop (the worker
server) and on a thread of its own (`devscale run`); a port already taken is an OSError at once;
shutdown frees the port. And `devscale run`'s endpoints themselves (scaling.loop.serve)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from devtrip_scale.core.httpserve import METRICS, TEXT, Reply, Routes, serve, serve_in_thread
from devtrip_scale.scaling.loop import LoopState, Telemetry
from devtrip_scale.scaling.loop import serve as serve_loop


def _boom() -> Reply:
    raise RuntimeError("broken")


ROUTES: Routes = {
    "/healthz": lambda: (503, b"not ready: redis disconnected\n", TEXT),
    "/metrics": lambda: (200, b"x 1\n", METRICS),
    "/boom": _boom,
}


@pytest.fixture
def threaded() -> Iterator[str]:
    server = serve_in_thread("127.0.0.1", 0, ROUTES)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()


def test_paths_answer_from_their_callables(threaded: str) -> None:
    r = httpx.get(f"{threaded}/healthz")
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        503, "not ready: redis disconnected\n", "text/plain")
    r = httpx.get(f"{threaded}/metrics")
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        200, "x 1\n", "text/plain; version=0.0.4")
    assert r.headers["content-length"] == "4"


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    ("GET", "/nope", 404, "not found\n"),
    ("GET", "/healthz?x=1", 404, "not found\n"),
    ("GET", "/boom", 500, "internal error\n"),
    ("HEAD", "/metrics", 200, ""),
    ("POST", "/metrics", 405, "method not allowed\n"),
], ids=["unknown", "query", "failing", "head", "post"])
def test_other_requests(threaded: str, method: str, path: str, status: int,
                        body: str) -> None:
    r = httpx.request(method, f"{threaded}{path}")
    assert (r.status_code, r.text) == (status, body)
    assert httpx.get(f"{threaded}/metrics").status_code == 200     # it goes on


def test_a_port_taken_fails_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as caught:
            serve_in_thread("127.0.0.1", port, ROUTES)
    assert caught.value.strerror == "Address already in use"


def test_shutdown_frees_the_port() -> None:
    server = serve_in_thread("127.0.0.1", 0, ROUTES)
    port = server.port
    server.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    again = serve_in_thread("127.0.0.1", port, ROUTES)
    again.shutdown()


def test_on_an_event_loop() -> None:
    calls: list[str] = []

    def healthz() -> Reply:
        calls.append("healthz")
        return 200, b"ok\n", TEXT

    async def main() -> None:
        server = await serve("127.0.0.1", 0, {"/healthz": healthz})
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{port}/healthz")
                assert (r.status_code, r.text) == (200, "ok\n")
                r = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert r.status_code == 404
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert calls == ["healthz"]


def test_a_request_head_never_finished_is_dropped() -> None:
    async def main() -> None:
        server = await serve("127.0.0.1", 0, ROUTES)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\n")          # and nothing more
            writer.close()
            assert await reader.read() == b""
            await writer.wait_closed()
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_devscale_run_endpoints() -> None:
    state, telemetry = LoopState(leader=True), Telemetry()
    server = serve_loop("127.0.0.1", 0, state, telemetry, stale_after=60)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert (httpx.get(f"{base}/healthz").status_code, httpx.get(f"{base}/healthz").text) == (
            200, "ok (leader)\n")
        state.leader, state.last_tick = False, time.monotonic() - 120
        r = httpx.get(f"{base}/healthz")
        assert (r.status_code, r.text) == (503, "stalled (follower)\n")
        telemetry.leader.set(1)
        r = httpx.get(f"{base}/metrics")
        assert r.status_code == 200 and "devscale_leader 1.0" in r.text
        assert r.headers["content-type"] == "text/plain; version=0.0.4"
    finally:
        server.shutdown()
