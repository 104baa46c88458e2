"""`workers status` grouping (pure): pods by task, ordered by index and attempt, phases
counted, a pod being deleted shown as Terminating."""

from __future__ import annotations

from typing import Any

from devtrip_scale.workers.status import tasks


def pod(name: str, task: str, index: int, attempt: int, phase: str,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {
        "devscale.devtrip.io/task": task, "devscale.devtrip.io/index": str(index),
        "devscale.devtrip.io/attempt": str(attempt)},
        "annotations": {"devscale.devtrip.io/task-id": task.upper()}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}, "spec": {"nodeName": "n1"}}


def test_pods_grouped_by_task() -> None:
    got = tasks([pod("b-1-0", "b", 1, 0, "Running"), pod("a-0-1", "a", 0, 1, "Running"),
                 pod("a-0-0", "a", 0, 0, "Failed", deleting=True),
                 pod("b-0-0", "b", 0, 0, "Pending")])
    assert [t["taskId"] for t in got] == ["A", "B"]
    assert [p["name"] for p in got[0]["pods"]] == ["a-0-0", "a-0-1"]
    assert got[0]["phases"] == {"Terminating": 1, "Running": 1}
    assert got[1]["phases"] == {"Running": 1, "Pending": 1}
