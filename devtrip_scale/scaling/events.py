"""EventRecorder: core/v1 Events on a target Deployment, Normal for a change, Warning for a
failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from devtrip_scale.core.trace import Trace
from devtrip_scale.kube import TIMEOUT, request
from devtrip_scale.kube.events import Involved, event_body
from devtrip_scale.scaling.ports import Workload

COMPONENT = "devscale"


class EventRecorder:
    """Writes the simplest Event every API server accepts: no eventTime, zoned timestamps."""

    def __init__(self, api_client: Any, namespace: str, trace: Trace | None = None) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._ns = namespace
        self._trace = trace or Trace()

    def record(self, workload: Workload, type_: Literal["Normal", "Warning"], reason: str,
               message: str) -> None:
        involved = Involved("apps/v1", "Deployment", workload.name, self._ns, workload.uid)
        body = event_body(involved, type_, reason, message, COMPONENT, datetime.now(UTC))
        request(self._trace, "create", "events", self._ns, None,
                lambda: self._core.create_namespaced_event(self._ns, body,
                                                           _request_timeout=TIMEOUT),
                detail=f"create events ({type_} {reason} on deployment/{workload.name}) "
                       f"-n {self._ns}")
