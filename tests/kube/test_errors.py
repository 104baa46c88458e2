"""kube.errors, the one map from a failed API call to devscale's errors: each status gives its
class and wording (403 with the RBAC rule, 404, 409, 401, any other); the message is the Status
body's, else the reason phrase (sync client), else the body itself, shortened; a call without an
answer names the cause and the server; and the sync client and the async one, given the same
answer by a real HTTP server, say exactly the same."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from kubernetes.client.exceptions import ApiException

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.kube import raise_api_error
from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.kube.errors import (
    api_error,
    httpx_cause,
    rbac_rule,
    status_message,
    unreachable,
)
from testbed.net import free_port


def _status(message: str, code: int) -> str:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": message, "code": code})


@pytest.mark.parametrize(("status", "kind", "text"), [
    (403, KubeForbidden,
     'forbidden: cannot create pods/w-0 in namespace ci: pods "w-0" is forbidden: no. Grant it '
     'with an RBAC rule: apiGroups: [""], resources: ["pods"], verbs: ["create"]'),
    (404, KubeNotFound, "pods/w-0 not found in namespace ci"),
    (409, KubeConflict, 'conflict on create pods/w-0 in namespace ci: pods "w-0" is forbidden: '
                        "no"),
    (401, KubeError, 'unauthorized: the API server rejected the credentials (pods "w-0" is '
                     'forbidden: no)'),
    (422, KubeError, 'create pods/w-0 in namespace ci failed: HTTP 422 pods "w-0" is forbidden: '
                     "no"),
    (500, KubeError, 'create pods/w-0 in namespace ci failed: HTTP 500 pods "w-0" is forbidden: '
                     "no"),
], ids=["forbidden", "not-found", "conflict", "unauthorized", "invalid", "server-error"])
def test_each_status_has_its_class_and_words(status: int, kind: type[KubeError],
                                             text: str) -> None:
    error = api_error(status, _status('pods "w-0" is forbidden: no', status), "create", "pods",
                      "ci", "w-0")
    assert type(error) is kind
    assert str(error) == text
    assert error.status == status


@pytest.mark.parametrize(("body", "reason", "message"), [
    (_status("the message", 500), "Internal Server Error", "the message"),
    (_status("the message", 500).encode(), None, "the message"),
    ("<html>502 Bad Gateway</html>\n", "Bad Gateway", "Bad Gateway"),
    ("  <html>502 Bad Gateway</html>\n", None, "<html>502 Bad Gateway</html>"),
    ("x" * 300, None, "x" * 200),
    ('{"kind": "Status"}', "Internal Server Error", "Internal Server Error"),
    ('{"kind": "Status"}', None, ""),
    ("[1, 2]", None, ""),
    ("", "", ""),
    (None, "Internal Server Error", "Internal Server Error"),
], ids=["status", "status-bytes", "page-with-reason", "page", "long-page", "no-message-reason",
        "no-message", "not-a-status", "empty", "no-body"])
def test_the_message_quoted(body: object, reason: str | None, message: str) -> None:
    error = api_error(500, body, "list", "pods", "ci", reason=reason)
    assert str(error) == f"list pods in namespace ci failed: HTTP 500 {message}"


def test_status_message() -> None:
    assert status_message(_status("m", 403)) == "m"
    assert status_message("not json") is None
    assert status_message(b"") is None
    assert status_message('{"code": 1}') is None


@pytest.mark.parametrize(("verb", "resource", "rule"), [
    ("patch", "deployments/scale", 'apiGroups: ["apps"], resources: ["deployments/scale"], '
                                   'verbs: ["patch"]'),
    ("update", "leases", 'apiGroups: ["coordination.k8s.io"], resources: ["leases"], '
                         'verbs: ["update"]'),
    ("create", "events", 'apiGroups: [""], resources: ["events"], verbs: ["create"]'),
    ("list", "horizontalpodautoscalers", 'apiGroups: ["autoscaling"], resources: '
                                         '["horizontalpodautoscalers"], verbs: ["list"]'),
])
def test_rbac_rule_names_the_group(verb: str, resource: str, rule: str) -> None:
    assert rbac_rule(verb, resource) == rule


def test_unreachable_names_cause_and_server() -> None:
    assert str(unreachable("get", "leases", "ci", "lock", "Connection refused",
                           "https://127.0.0.1:9")) == (
        "get leases/lock in namespace ci: API server unreachable or too slow: Connection "
        "refused (at https://127.0.0.1:9)")
    assert str(unreachable("list", "pods", "ci", None, "boom", None)) == (
        "list pods in namespace ci: API server unreachable or too slow: boom")


def test_httpx_causes() -> None:
    request = httpx.Request("GET", "https://127.0.0.1:9/api")
    assert httpx_cause(httpx.ConnectTimeout("x", request=request), 5.0) == (
        "no connection within 5s (connect timeout)")
    assert httpx_cause(httpx.ReadTimeout("x", request=request), 5.0) == (
        "no answer in time (read timeout)")
    assert httpx_cause(httpx.ConnectError("refused", request=request), 5.0) == "refused"
    assert httpx_cause(httpx.ConnectError("", request=request), 5.0) == "ConnectError"


# ------------------------------------------------ the sync and the async client say the same

ANSWERS = [
    (403, _status('pods is forbidden: User "ci" cannot list resource "pods"', 403)),
    (404, _status('pods "w-0" not found', 404)),
    (409, _status("Operation cannot be fulfilled", 409)),
    (401, _status("Unauthorized", 401)),
    (503, _status("the server is shutting down", 503)),
]


@pytest.fixture
def answering() -> Iterator[tuple[str, dict[str, tuple[int, str]]]]:
    """A real HTTP server that answers each path with the status and body set for it."""
    answers: dict[str, tuple[int, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers[self.path.split("?")[0]]
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", answers
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "body"), ANSWERS, ids=[str(s) for s, _ in ANSWERS])
def test_sync_and_async_clients_say_the_same(
        answering: tuple[str, dict[str, tuple[int, str]]], status: int, body: str) -> None:
    from kubernetes import client

    base, answers = answering
    answers["/api/v1/namespaces/ci/pods"] = (status, body)
    cfg = client.Configuration(host=base)
    api = client.ApiClient(cfg)
    try:
        with pytest.raises(ApiException) as raw:
            client.CoreV1Api(api).list_namespaced_pod("ci", _request_timeout=(2, 2))
    finally:
        api.close()
    with pytest.raises(KubeError) as sync:
        raise_api_error(raw.value, "list", "pods", "ci")

    async def listed() -> KubeError:
        kube = AsyncKube(cfg, "ci")
        try:
            await kube.list_pods("a=b")
        except KubeError as e:
            return e
        finally:
            await kube.aclose()
        raise AssertionError("the list did not fail")

    async_error = asyncio.run(listed())
    assert type(async_error) is type(sync.value)
    assert str(async_error) == str(sync.value)
    assert async_error.status == sync.value.status == status
