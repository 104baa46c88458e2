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
