"""`devscale workers status`: tasks and their pods, read from the cluster (pure grouping)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devtrip_scale.workers import ATTEMPT_LABEL, INDEX_LABEL, TASK_ID_ANNOTATION, TASK_LABEL
from devtrip_scale.workers.tasks import exit_code


def tasks(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods grouped by task, each task with its pods (index, attempt, phase, exit code)."""
    out: dict[str, dict[str, Any]] = {}
    for pod in pods:
        meta = pod["metadata"]
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        key = labels.get(TASK_LABEL, "?")
        task = out.setdefault(key, {"taskId": notes.get(TASK_ID_ANNOTATION, key), "key": key,
                                    "pods": [], "phases": {}})
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if meta.get("deletionTimestamp"):
            phase = "Terminating"
        task["pods"].append({"name": meta["name"], "index": int(labels.get(INDEX_LABEL, 0)),
                             "attempt": int(labels.get(ATTEMPT_LABEL, 0)), "phase": phase,
                             "node": (pod.get("spec") or {}).get("nodeName"),
                             "exitCode": exit_code(pod)})
        task["phases"][phase] = task["phases"].get(phase, 0) + 1
    for task in out.values():
        task["pods"].sort(key=lambda p: (p["index"], p["attempt"]))
    return sorted(out.values(), key=lambda t: str(t["taskId"]))


def waiting(pod: dict[str, Any]) -> str | None:
    """Why a pod has not started running, as `Phase: Reason: message` (a pod that runs or
    ended: None). The scheduler's word first (`Pending: Unschedulable: 0/3 nodes are
    available: …`), then a container's (`Pending: ImagePullBackOff: Back-off pulling image
    …`), else where it stands (`Pending: no node yet`, `Pending: on node n1, starting`)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase != "Pending" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None

    def said(reason: str | None, message: str | None) -> str:
        text = f"{phase}: {reason or 'waiting'}"
        return f"{text}: {' '.join(message.split())}" if message else text

    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return said(condition.get("reason"), condition.get("message"))
    for container in [*(status.get("initContainerStatuses") or []),
                      *(status.get("containerStatuses") or [])]:
        state = (container.get("state") or {}).get("waiting")
        if state and state.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return said(state.get("reason"), state.get("message"))
    node = (pod.get("spec") or {}).get("nodeName")
    return f"{phase}: on node {node}, starting" if node else f"{phase}: no node yet"
