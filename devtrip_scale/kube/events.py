"""EventRecorder: core/v1 Events on a Deployment, Normal for a change, Warning for a failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from devtrip_scale.kube import TIMEOUT, request
from devtrip_scale.ports import Workload
from devtrip_scale.trace import Trace

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
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{workload.name}.devscale-", "namespace": self._ns},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": workload.name, "namespace": self._ns,
                               "uid": workload.uid or None},
            "type": type_, "reason": reason[:128], "message": _cut(message, 1024),
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        request(self._trace, "create", "events", self._ns, None,
                lambda: self._core.create_namespaced_event(self._ns, body,
                                                           _request_timeout=TIMEOUT),
                detail=f"create events ({type_} {reason} on deployment/{workload.name}) "
                       f"-n {self._ns}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
