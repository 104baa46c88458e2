"""Kubernetes client construction and the mapping of API errors to devscale's own."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from devtrip_scale.errors import KubeConflict, KubeError, KubeForbidden, KubeNotFound
from devtrip_scale.trace import Trace

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
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube" / "config"
    )
    if not Path(path).is_file():
        raise KubeError(f"kubeconfig {path} does not exist; pass --kubeconfig or set KUBECONFIG")
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
    except (ConfigException, ValueError, TypeError, OSError) as e:
        where = f"context {context!r} of {path}" if context else path
        raise KubeError(f"cannot use kubeconfig {where}: {e}") from None
    return _client(cfg)


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
        raise KubeError(f"{verb} {what} in namespace {namespace}: API server unreachable "
                        f"or too slow: {type(e).__name__}") from None
    raise e


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
