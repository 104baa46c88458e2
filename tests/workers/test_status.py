"""`workers status` grouping (pure): pods by task, ordered by index and attempt, phases
counted, a pod being deleted shown as Terminating; why a pod is not running yet."""

from __future__ import annotations

from typing import Any

import pytest

from devtrip_scale.workers.status import tasks, waiting


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


@pytest.mark.parametrize(("status", "spec", "said"), [
    ({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node\n"
                    "affinity/selector."}]}, {},
     "Pending: Unschedulable: 0/3 nodes are available: 3 node(s) didn't match Pod's node "
     "affinity/selector."),
    ({"phase": "Pending", "containerStatuses": [{"name": "worker", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}}]},
     {"nodeName": "n1"}, "Pending: ImagePullBackOff: Back-off pulling image \"nope:1\""),
    ({"phase": "Pending", "containerStatuses": [{"name": "worker", "state": {"waiting": {
        "reason": "ContainerCreating"}}}]}, {"nodeName": "n1"},
     "Pending: on node n1, starting"),
    ({}, {}, "Pending: no node yet"),
    ({"phase": "Running"}, {"nodeName": "n1"}, None),
    ({"phase": "Succeeded"}, {"nodeName": "n1"}, None),
], ids=["unschedulable", "image-pull", "creating", "no-node", "running", "ended"])
def test_why_a_pod_is_not_running(status: dict[str, Any], spec: dict[str, Any],
                                  said: str | None) -> None:
    assert waiting({"metadata": {"name": "w-x-0-0"}, "spec": spec, "status": status}) == said
