"""HttpJsonSource against a real HTTP server on loopback: the number at a dotted field, and each
way an endpoint can fail (status, not JSON, missing field, not a number, NaN, negative,
down, too slow)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devtrip_scale.scaling.ports import MetricQuery
from devtrip_scale.scaling.sources.http_json import HttpJsonSource, read_field
from testbed.net import free_port

ROUTES: dict[str, tuple[int, str]] = {
    "/metrics/waiting-jobs": (200, json.dumps({"queue": "jobs", "waiting": 7})),
    "/nested": (200, json.dumps({"queues": {"jobs": {"waiting": 2.5}}})),
    "/plain": (200, "12"),
    "/broken": (500, "oops"),
    "/html": (200, "<html>login</html>"),
    "/nan": (200, '{"waiting": NaN}'),
    "/text": (200, '{"waiting": "many"}'),
    "/negative": (200, '{"waiting": -4}'),
    "/empty-queue": (200, '{"waiting": 0}'),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        status, body = ROUTES.get(self.path, (404, "not found"))
        # /slow's client has given up: the broken pipe must not print into a later test's output
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "field", "shared", "error"),
    [
        pytest.param("/metrics/waiting-jobs", "waiting", 7.0, None, id="waiting-jobs"),
        pytest.param("/nested", "queues.jobs.waiting", 2.5, None, id="dotted-path"),
        pytest.param("/plain", None, 12.0, None, id="body-is-the-number"),
        pytest.param("/broken", "waiting", None, "answered HTTP 500", id="server-error"),
        pytest.param("/missing", "waiting", None, "answered HTTP 404", id="not-found"),
        pytest.param("/html", "waiting", None, "did not answer JSON", id="not-json"),
        pytest.param("/nested", "queues.mail", None, "no field 'queues.mail'", id="no-field"),
        pytest.param("/nan", "waiting", None, "is nan", id="nan-is-missing"),
        pytest.param("/text", "waiting", None, "not a number", id="not-a-number"),
        pytest.param("/negative", "waiting", None, "field 'waiting' is -4: a negative reading "
                     "is not a load", id="negative-is-not-a-load"),
        pytest.param("/empty-queue", "waiting", 0.0, None, id="zero-waiting-is-a-reading"),
        pytest.param("/slow", None, None, "did not answer within 0.5s", id="too-slow"),
    ],
)
def test_endpoint(endpoint: str, path: str, field: str | None, shared: float | None,
                  error: str | None) -> None:
    source = HttpJsonSource(timeout=0.5)
    [result] = source.fetch([MetricQuery("waiting", url=endpoint + path, field=field)])
    source.close()
    assert result.shared == shared
    assert (result.error is None) if error is None else (error in (result.error or ""))


def test_endpoint_down() -> None:
    source = HttpJsonSource(timeout=1)
    url = f"http://127.0.0.1:{free_port()}/metrics/waiting-jobs"
    [result] = source.fetch([MetricQuery("waiting", url=url, field="waiting")])
    source.close()
    assert result.error == f"cannot reach {url}: ConnectError"


def test_booleans_are_not_numbers() -> None:
    assert read_field("m", {"busy": True}, "busy").error is not None
