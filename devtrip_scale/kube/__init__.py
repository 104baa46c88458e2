"""Kubernetes client construction, and one traced API call with its failure mapped (kube.errors)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from devtrip_scale.core.errors import KubeError
from devtrip_scale.core.trace import Trace
from devtrip_scale.kube.errors import api_error, unreachable, urllib3_cause
from devtrip_scale.kube.errors import rbac_rule as rbac_rule  # re-exported: its old home

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
    """Map a sync client exception to a KubeError naming the verb, resource and object (by the
    one map in kube.errors)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(e, ApiException):
        raise api_error(int(e.status or 0), e.body, verb, resource, namespace, name,
                        reason=e.reason or "") from None
    if isinstance(e, HTTPError | OSError):
        server, cause = urllib3_cause(e, TIMEOUT)
        raise unreachable(verb, resource, namespace, name, cause, server) from None
    raise e
