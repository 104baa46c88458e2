"""KWOK in the test bed: container log files in the CRI format, and `pods/log` read and followed
through the real API server from the file a test writes, including KWOK's follow stream not
ending when the pod does (code built on follow must not rely on it ending)."""

from __future__ import annotations

import queue
import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from testbed import kwok
from testbed.net import wait_until
from tests.conftest import Cluster


def test_write_log_appends_cri_lines(tmp_path: Path) -> None:
    path = tmp_path / "ns" / "pod" / "app.log"
    kwok.write_log(path, ["first"])
    kwok.write_log(path, ["second line", ""], stream="stderr")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "stdout F first", "stderr F second line", "stderr F "]
    for line in lines:
        datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_node_manifest_states_its_capacity() -> None:
    node = kwok.Node("n1", cpu="2", memory="4Gi", pods=10)
    status = node.manifest()["status"]
    assert status["capacity"] == status["allocatable"] == {
        "cpu": "2", "memory": "4Gi", "pods": "10"}


def running_pod(cluster: Cluster, name: str, run_seconds: float) -> None:
    from kubernetes import client

    cluster.pod(name, run_seconds=run_seconds)
    core = client.CoreV1Api(cluster.api)
    wait_until(lambda: core.read_namespaced_pod(name, cluster.namespace).status.phase
               == "Running", f"pod {name} Running", timeout=30)


@pytest.mark.integration
def test_pod_log_is_read_through_the_api_server(cluster: Cluster) -> None:
    from kubernetes import client

    running_pod(cluster, "task", run_seconds=60)
    cluster.pod_log("task", ["hello", "world"])
    core = client.CoreV1Api(cluster.api)
    assert core.read_namespaced_pod_log("task", cluster.namespace) == "hello\nworld\n"
    assert core.read_namespaced_pod_log("task", cluster.namespace, tail_lines=1) == "world\n"
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod_log("task", cluster.namespace, container="sidecar")
    assert err.value.status == 400


class Follower:
    """`pods/log?follow=true` read on a thread, one line at a time."""

    def __init__(self, cluster: Cluster, pod: str) -> None:
        from kubernetes import client

        self.lines: queue.Queue[str | None] = queue.Queue()
        self.response: Any = client.CoreV1Api(cluster.api).read_namespaced_pod_log(
            pod, cluster.namespace, follow=True, _preload_content=False)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.response:
                self.lines.put(line.decode().rstrip("\n"))
        except Exception:  # the stream closed under it by close()
            pass
        self.lines.put(None)   # the stream ended

    def next(self, timeout: float = 15) -> str | None:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        # Closing the response under the reading thread deadlocks on the buffered reader's
        # lock: shut the socket down so the thread's read returns, then close.
        self.response.connection.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=10)
        self.response.close()


@pytest.mark.integration
def test_follow_streams_new_lines_and_does_not_end_with_the_pod(cluster: Cluster) -> None:
    from kubernetes import client

    running_pod(cluster, "task", run_seconds=3)
    cluster.pod_log("task", ["before"])
    follower = Follower(cluster, "task")
    try:
        assert follower.next() == "before"
        cluster.pod_log("task", ["while running"])
        assert follower.next() == "while running"
        core = client.CoreV1Api(cluster.api)
        wait_until(lambda: core.read_namespaced_pod(
            "task", cluster.namespace).status.phase == "Succeeded", "pod ended", timeout=30)
        # A kubelet ends the stream when the container stops; KWOK keeps it open.
        cluster.pod_log("task", ["after the pod ended"])
        assert follower.next() == "after the pod ended"
        with pytest.raises(queue.Empty):
            follower.next(timeout=3)
        assert follower.thread.is_alive()
    finally:
        follower.close()
