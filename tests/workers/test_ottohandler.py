"""The otto_handler forwarder: which worker states a pod event tells next (CREATED → RUNNING →
COMPLETED / FAILED, or TERMINATED, each once, gaps filled in), how a relayed line becomes
Ottoscaler's WorkerLogEntry (its sequence in the metadata), and a CI server that is not there:
the bounded queue's overflow counted and said, never waited on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from devtrip_scale.workers.config import OttoHandlerModel
from devtrip_scale.workers.ottohandler import (
    COMPLETED,
    CREATED,
    FAILED,
    RUNNING,
    TERMINATED,
    OttoForwarder,
    log_entry,
    notification,
    transitions,
)
from devtrip_scale.workers.progress import LogLine
from testbed.net import free_port


def _pod(phase: str | None, started: bool = False, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "w-t-0-0", "labels": {"devscale.devtrip.io/index": "0"},
                            "annotations": {"devscale.devtrip.io/task-id": "t"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T10:00:00Z"
    status: dict[str, Any] = {} if phase is None else {"phase": phase}
    if started:
        status["startTime"] = "2026-12-04T09:59:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(("sent", "kind", "pod", "told"), [
    pytest.param((), "ADDED", _pod(None), [CREATED], id="created"),
    pytest.param((CREATED,), "MODIFIED", _pod("Pending"), [], id="nothing-new"),
    pytest.param((CREATED,), "MODIFIED", _pod("Running", True), [RUNNING], id="running"),
    pytest.param((CREATED, RUNNING), "MODIFIED", _pod("Succeeded", True), [COMPLETED],
                 id="completed"),
    pytest.param((), "ADDED", _pod("Succeeded", True), [CREATED, RUNNING, COMPLETED],
                 id="first-seen-done"),
    pytest.param((CREATED,), "MODIFIED", _pod("Failed", True), [RUNNING, FAILED],
                 id="failed-after-running"),
    pytest.param((CREATED,), "MODIFIED", _pod("Failed"), [FAILED], id="failed-never-started"),
    pytest.param((CREATED, RUNNING), "DELETED", _pod("Running", True), [TERMINATED],
                 id="deleted-running"),
    pytest.param((CREATED,), "MODIFIED", _pod("Pending", deleting=True), [TERMINATED],
                 id="deleting-pending"),
    pytest.param((CREATED, RUNNING, COMPLETED), "DELETED", _pod("Succeeded", True), [],
                 id="deleted-after-its-end"),
    pytest.param((CREATED, TERMINATED), "DELETED", _pod("Running", True), [], id="once"),
])
def test_transitions(sent: tuple[int, ...], kind: str, pod: dict[str, Any],
                     told: list[int]) -> None:
    assert transitions(sent, kind, pod) == told


def test_a_line_as_a_worker_log_entry() -> None:
    line = LogLine(1764842400.5, "compiling", "w-b-1-x-0-1", "b-1/x", "b-1", "x", 0, 1)
    e = log_entry(line, 42, "ep0ch", "ns")
    assert (e.worker_id, e.task_id, e.message, e.source, e.timestamp) == (
        "w-b-1-x-0-1", "b-1/x", "compiling", "combined", "2025-12-04T10:00:00.500Z")
    assert (e.metadata["sequence"], e.metadata["stream_epoch"], e.metadata["build_id"],
            e.metadata["stage"]) == ("42", "ep0ch", "b-1", "x")
    assert (e.pod_metadata.pod_name, e.pod_metadata.namespace) == ("w-b-1-x-0-1", "ns")
    assert e.pod_metadata.labels["devscale.devtrip.io/attempt"] == "1"


def test_a_notification_names_the_worker_and_its_task() -> None:
    n = notification(_pod("Failed"), FAILED, 1764842400.0)
    assert (n.worker_id, n.task_id, n.status, n.timestamp, n.metadata["index"]) == (
        "w-t-0-0", "t", FAILED, "2025-12-04T10:00:00.000Z", "0")


def test_a_full_queue_counts_and_says_the_overflow_without_blocking() -> None:
    """Nothing listens at the CI server's address: lines past queue_limit are counted as
    overflow (their sequence numbers skipped) and said, the build's result names them and
    those still waiting, and feeding lines never waits on the network."""
    said: list[str] = []
    settings = OttoHandlerModel(address=f"127.0.0.1:{free_port()}", plaintext=True,
                                queue_limit=10, report_wait_seconds=0.3,
                                max_backoff_seconds=0.2)

    async def main() -> tuple[dict[str, str], float, list[int], int]:
        fwd = OttoForwarder(settings, namespace="ns", say=said.append)
        fwd.start()
        started = time.perf_counter()
        for i in range(25):
            fwd.on_line(LogLine(1764842400.0 + i, f"line {i}", "w-b-1-x-0-0", "b-1/x", "b-1",
                                "x"))
        elapsed = time.perf_counter() - started
        result = await fwd.build_result("b-1")
        waiting = [item.sequence for item in fwd.lines]
        await fwd.aclose()
        return result, elapsed, waiting, fwd.sequence

    result, elapsed, waiting, last = asyncio.run(main())
    assert result == {"otto_forwarded": "0", "otto_dropped": "0", "otto_overflow": "15",
                      "otto_gave_up": "0", "otto_unsettled": "10"}
    assert waiting == list(range(1, 11)) and last == 25
    assert elapsed < 0.5
    assert any("queue of 10 lines is full" in line for line in said)
    assert any("15 overflowed, 0 given up, 10 still waiting" in line for line in said)
    assert any("stopped with 10 log line(s) not forwarded" in line for line in said)
