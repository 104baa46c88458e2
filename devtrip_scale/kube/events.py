"""core/v1 Event bodies (pure): the simplest form every API server accepts, for both wings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

REASON_LIMIT = 128
MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class Involved:
    """The object an Event is about, in the Event's own namespace."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str = ""


def event_body(involved: Involved, type_: Literal["Normal", "Warning"], reason: str,
               message: str, component: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event: no eventTime (a MicroTime), zoned whole-second timestamps, count 1,
    reason and message cut to the API server's limits."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{involved.name}.{component}-",
                     "namespace": involved.namespace},
        "involvedObject": {"apiVersion": involved.api_version, "kind": involved.kind,
                           "name": involved.name, "namespace": involved.namespace,
                           **({"uid": involved.uid} if involved.uid else {})},
        "type": type_, "reason": reason[:REASON_LIMIT], "message": _cut(message, MESSAGE_LIMIT),
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
