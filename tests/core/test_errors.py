"""errors and their wording: every DevscaleError maps to its documented exit code; transport
failures of the Kubernetes client name the API server's address and the cause (never a bare
exception class); Prometheus' HTTP errors are its own `error` text, never a byte-string repr."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import urllib3
from prometheus_api_client.exceptions import PrometheusApiClientException

from devtrip_scale.core.errors import (
    ApiError,
    ConfigError,
    DevscaleError,
    ExitCode,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    LeaseHeld,
    MetricsError,
    NotifyError,
    PipelineFailed,
)
from devtrip_scale.kube import raise_api_error
from devtrip_scale.scaling.sources.prometheus import _short
from testbed.net import free_port


@pytest.mark.parametrize(("error", "code"), [
    (DevscaleError("x"), ExitCode.INTERNAL), (ConfigError("x"), ExitCode.CONFIG),
    (MetricsError("x"), ExitCode.METRICS), (KubeError("x"), ExitCode.KUBERNETES),
    (KubeForbidden("x"), ExitCode.KUBERNETES), (KubeNotFound("x"), ExitCode.KUBERNETES),
    (KubeConflict("x"), ExitCode.KUBERNETES), (LeaseHeld("x"), ExitCode.LOCKED),
    (NotifyError("x"), ExitCode.NOTIFY), (PipelineFailed("x"), ExitCode.PIPELINE),
    (ApiError("x"), ExitCode.API),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.name)
def test_each_error_class_has_its_exit_code(error: DevscaleError, code: ExitCode) -> None:
    assert error.exit_code == code


def _failure(call: Any) -> Exception:
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("the call did not fail")


def test_connection_refused_names_the_server_and_the_cause() -> None:
    port = free_port()
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", port)
    e = _failure(lambda: pool.urlopen("GET", "/api", retries=urllib3.util.Retry(total=0)))
    with pytest.raises(KubeError) as caught:
        raise_api_error(e, "list", "deployments", "devtrip")
    assert str(caught.value) == (
        "list deployments in namespace devtrip: API server unreachable or too slow: "
        f"Connection refused (at https://127.0.0.1:{port})")


def test_a_read_timeout_names_the_server_and_the_limit() -> None:
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, timeout=urllib3.Timeout(read=0.2))
        e = _failure(lambda: pool.urlopen("GET", "/api", retries=False))
    with pytest.raises(KubeError) as caught:
        raise_api_error(e, "get", "leases", "devtrip", "devscale-lock")
    assert str(caught.value) == (
        "get leases/devscale-lock in namespace devtrip: API server unreachable or too slow: "
        f"no answer within 15s (read timeout) (at http://127.0.0.1:{port})")


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": '
     b'1:1: parse error: unknown function with name \\"mad_over_time\\""}',
     'HTTP 400: bad_data: invalid parameter "query": 1:1: parse error: unknown function with '
     'name "mad_over_time"'),
    (b"<html><title>502 Bad Gateway</title>\n</html>", "HTTP 400: <html><title>502 Bad Gateway"
     "</title>"),
    (b"", "HTTP 400"),
], ids=["prometheus-json", "proxy-page", "empty-body"])
def test_prometheus_http_errors_read_as_text_not_bytes(content: bytes, expected: str) -> None:
    """The message prometheus-api-client builds: "HTTP Status Code N (b'…')"."""
    error = PrometheusApiClientException(f"HTTP Status Code 400 ({content!r})")
    text = _short(error)
    assert text == expected
    assert "b'" not in text and '\\"' not in text
