"""Kubernetes client construction and the mapping of API errors to devscale's own."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.core.trace import Trace

T = TypeVar("T")

# (connect, read) seconds for every API call: the client's default waits forever.
TIMEOUT = (5.0, 15.0)
FIELD_MANAGER = "devscale"


def connect(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient from the given kubeconfig/context, in-cluster config, or the default file.

    Explicit `--kubeconfig`/`--context` win; inside a pod the ServiceAccount is used; otherwise
    `$KUBECONFIG` or `~/.kube/config`. Errors name the file and the context.
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return _client(cfg)
        except ConfigException as e:
            raise KubeError(f"in-cluster Kubernetes config is unusable: {e}") from None
    from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    path = kubeconfig or from_env or str(Path.home() / ".kube" / "config")
    if not Path(path).is_file():
        if kubeconfig:
            hint = "check the path given to --kubeconfig"
        elif from_env:
            hint = "check $KUBECONFIG"
        else:
            hint = "pass --kubeconfig or set KUBECONFIG"
        what = "is not a file" if Path(path).exists() else "does not exist"
        raise KubeError(f"kubeconfig {path} {what}; {hint}")
    cfg = client.Configuration()
    where = f"context {context!r} of {path}" if context else path
    try:
        with _logged_errors() as logged:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
    except ConfigException as e:
        raise KubeError(f"cannot use kubeconfig {where}: {e}") from None
    except Exception as e:  # a file that is not a kubeconfig: bad YAML, wrong shapes
        raise KubeError(f"kubeconfig {path} is malformed: {_malformed(e)}") from None
    if logged:  # the client logs a failed exec credential plugin and goes on without credentials
        raise KubeError(f"cannot use kubeconfig {where}: the user's exec credential plugin "
                        f"failed: {_one_line(' '.join(logged))[:500]}")
    return _client(cfg)


@contextmanager
def _logged_errors() -> Iterator[list[str]]:
    """Collect what the kubernetes client logs at ERROR on the root logger, instead of printing.

    With a handler on the root logger, `logging.error` does not install its own stderr handler
    (the raw `ERROR:root:` line).
    """
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _one_line(text: str) -> str:
    return re.sub(r"\[Errno -?\d+\] ", "", " ".join(text.split()))


def _malformed(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    if mark is not None:  # a YAML error: its line and what is wrong
        return f"not valid YAML at line {mark.line + 1}: {getattr(e, 'problem', '') or e}"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _client(cfg: Any) -> Any:
    """An ApiClient that reconnects once, quickly, and never retries a read.

    A hung API server then costs one read timeout, not the client's default four.
    """
    from kubernetes import client
    from urllib3.util.retry import Retry

    cfg.retries = Retry(total=1, connect=1, read=False, status=0, other=0, backoff_factor=0.1)
    return client.ApiClient(cfg)


def request(trace: Trace, verb: str, resource: str, namespace: str, name: str | None,
            call: Callable[[], T], *, detail: str | None = None) -> T:
    """One API call: traced for `--debug`, its failure mapped by `raise_api_error`."""
    what = f"{resource}/{name}" if name else resource
    try:
        with trace.span("kube", detail or f"{verb} {what} -n {namespace}"):
            return call()
    except Exception as e:
        raise_api_error(e, verb, resource, namespace, name)


def raise_api_error(e: Exception, verb: str, resource: str, namespace: str,
                    name: str | None = None) -> NoReturn:
    """Map a client exception to a KubeError naming the verb, resource and object."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    what = f"{resource}/{name}" if name else resource
    if isinstance(e, ApiException):
        status = int(e.status or 0)
        message = _status_message(e.body) or (e.reason or "")
        if status == 403:
            raise KubeForbidden(
                f"forbidden: cannot {verb} {what} in namespace {namespace}: {message}. "
                f"Grant it with an RBAC rule: {rbac_rule(verb, resource)}",
                status=status,
            ) from None
        if status == 404:
            raise KubeNotFound(f"{what} not found in namespace {namespace}",
                               status=status) from None
        if status == 409:
            raise KubeConflict(
                f"conflict on {verb} {what} in namespace {namespace}: {message}", status=status
            ) from None
        if status == 401:
            raise KubeError(f"unauthorized: the API server rejected the credentials ({message})",
                            status=status) from None
        raise KubeError(f"{verb} {what} in namespace {namespace} failed: HTTP {status} {message}",
                        status=status) from None
    if isinstance(e, HTTPError | OSError):
        server, cause = _transport_failure(e)
        raise KubeError(f"{verb} {what} in namespace {namespace}: API server unreachable "
                        f"or too slow: {cause}{server}") from None
    raise e


def _transport_failure(e: Exception) -> tuple[str, str]:
    """The API server's address (" (at URL)", or "") and the cause of a failed call."""
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    pool = getattr(e, "pool", None)
    server = f" (at {pool.scheme}://{pool.host}:{pool.port})" if pool is not None else ""
    reason = e.reason if isinstance(e, MaxRetryError) and e.reason is not None else e
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return server, f"no connection within {TIMEOUT[0]:g}s (connect timeout)"
    if isinstance(reason, ReadTimeoutError):
        return server, f"no answer within {TIMEOUT[1]:g}s (read timeout)"
    text = str(reason.args[0] if isinstance(reason, ProtocolError) and reason.args else reason)
    text = re.sub(r"^\w+Connection(Pool)?\(host=[^)]*\): ", "", text)
    text = text.removeprefix("Failed to establish a new connection: ")
    text = re.sub(r"\[Errno -?\d+\] ", "", text).strip()
    if isinstance(reason, SSLError):
        text = f"TLS failed: {text}"
    elif isinstance(reason, ProtocolError):
        text = f"the connection broke: {text}"
    return server, text or type(reason).__name__


_API_GROUPS = {
    "deployments": "apps",
    "deployments/scale": "apps",
    "configmaps": "",
    "events": "",
    "leases": "coordination.k8s.io",
    "horizontalpodautoscalers": "autoscaling",
    "pods": "",
}


def rbac_rule(verb: str, resource: str) -> str:
    """The Role rule that grants `verb` on `resource`, as YAML flow text."""
    group = _API_GROUPS.get(resource, "")
    return f'apiGroups: ["{group}"], resources: ["{resource}"], verbs: ["{verb}"]'


def _status_message(body: object) -> str | None:
    if not body:
        return None
    try:
        status = json.loads(body if isinstance(body, str | bytes) else str(body))
    except ValueError:
        return None
    return str(status.get("message")) if isinstance(status, dict) and "message" in status else None
