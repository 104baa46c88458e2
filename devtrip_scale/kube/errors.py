"""The one map from a failed Kubernetes API call to devscale's errors, for the sync client and the
async one alike: an HTTP status and its Status body, or a connection that failed, with the verb,
resource, namespace and object → KubeForbidden (naming the RBAC rule that grants the call),
KubeNotFound, KubeConflict or KubeError.

Each client turns its own transport library's exception into a cause (`urllib3_cause`,
`httpx_cause`); the wording of every message is here.
"""

from __future__ import annotations

import json
import re

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeForbidden, KubeNotFound

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


def status_message(body: object) -> str | None:
    """The `message` of a Kubernetes Status body (JSON text or bytes), or None."""
    if not body:
        return None
    try:
        status = json.loads(body if isinstance(body, str | bytes) else str(body))
    except ValueError:
        return None
    return str(status.get("message")) if isinstance(status, dict) and "message" in status else None


def _quoted(body: object) -> str:
    """A body that is not JSON, shortened (a proxy's page); "" for JSON without a message."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        json.loads(text)
    except ValueError:
        return text.strip()[:200]
    return ""


def api_error(status: int, body: object, verb: str, resource: str, namespace: str,
              name: str | None = None, *, reason: str | None = None) -> KubeError:
    """The devscale error for an API answer with HTTP `status` >= 400.

    The message quotes the Status body's `message`; without one, `reason` (the HTTP reason
    phrase the sync client gives) when given, else the body itself (its first 200 characters).
    """
    what = f"{resource}/{name}" if name else resource
    message = status_message(body) or (reason if reason is not None else _quoted(body))
    if status == 403:
        return KubeForbidden(
            f"forbidden: cannot {verb} {what} in namespace {namespace}: {message}. "
            f"Grant it with an RBAC rule: {rbac_rule(verb, resource)}", status=status)
    if status == 404:
        return KubeNotFound(f"{what} not found in namespace {namespace}", status=status)
    if status == 409:
        return KubeConflict(f"conflict on {verb} {what} in namespace {namespace}: {message}",
                            status=status)
    if status == 401:
        return KubeError(f"unauthorized: the API server rejected the credentials ({message})",
                         status=status)
    return KubeError(f"{verb} {what} in namespace {namespace} failed: HTTP {status} {message}",
                     status=status)


def unreachable(verb: str, resource: str, namespace: str, name: str | None, cause: str,
                server: str | None) -> KubeError:
    """The devscale error for a call that got no answer: `cause`, and the server's address."""
    what = f"{resource}/{name}" if name else resource
    at = f" (at {server})" if server else ""
    return KubeError(f"{verb} {what} in namespace {namespace}: API server unreachable or too "
                     f"slow: {cause}{at}")


def urllib3_cause(e: Exception, timeout: tuple[float, float]) -> tuple[str | None, str]:
    """The API server's address (or None) and the cause of a failed call of the sync client
    (urllib3), with its (connect, read) `timeout` in seconds."""
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    pool = getattr(e, "pool", None)
    server = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else None
    reason = e.reason if isinstance(e, MaxRetryError) and e.reason is not None else e
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return server, f"no connection within {timeout[0]:g}s (connect timeout)"
    if isinstance(reason, ReadTimeoutError):
        return server, f"no answer within {timeout[1]:g}s (read timeout)"
    text = str(reason.args[0] if isinstance(reason, ProtocolError) and reason.args else reason)
    text = re.sub(r"^\w+Connection(Pool)?\(host=[^)]*\): ", "", text)
    text = text.removeprefix("Failed to establish a new connection: ")
    text = re.sub(r"\[Errno -?\d+\] ", "", text).strip()
    if isinstance(reason, SSLError):
        text = f"TLS failed: {text}"
    elif isinstance(reason, ProtocolError):
        text = f"the connection broke: {text}"
    return server, text or type(reason).__name__


def httpx_cause(e: Exception, connect_seconds: float) -> str:
    """The cause of a failed call of the async client (httpx)."""
    import httpx

    if isinstance(e, httpx.ConnectTimeout):
        return f"no connection within {connect_seconds:g}s (connect timeout)"
    if isinstance(e, httpx.ReadTimeout):
        return "no answer in time (read timeout)"
    return str(e) or type(e).__name__
