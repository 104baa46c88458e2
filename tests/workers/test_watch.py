"""One list-then-watch of all worker pods against the real API server: every change reaches
the handler from a single list and watch stream (no per-pod GET), a watch from a version the
server no longer has (410 Gone) lists again, and pods deleted while not watching are reported
as DELETED by the next list. (410 Gone itself: tests/workers/test_watch_events.py; the test
bed's etcd is not compacted, so a real server serves even resourceVersion 1.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers import SELECTOR
from devtrip_scale.workers.watch import PodWatch
from tests.conftest import Cluster

pytestmark = pytest.mark.integration


def _pod(name: str, managed: bool = True) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "devscale"} if managed else {}
    return {"metadata": {"name": name, "labels": labels,
                         "annotations": {"devscale.test/run-seconds": "1"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "worker", "image": "w:1"}]}}


def test_one_watch_sees_every_change(cluster: Cluster, admin_kubeconfig: Path) -> None:
    core = client.CoreV1Api(cluster.api)
    seen: list[tuple[str, str, str]] = []

    def handler(kind: str, pod: dict[str, Any]) -> None:
        seen.append((kind, pod["metadata"]["name"], (pod.get("status") or {}).get("phase", "")))

    async def main() -> dict[str, int]:
        kube = AsyncKube.connect(str(admin_kubeconfig), None, cluster.namespace)
        watch = PodWatch(kube, SELECTOR, handler)
        task = asyncio.create_task(watch.run())
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            for i in range(5):
                await asyncio.to_thread(core.create_namespaced_pod, cluster.namespace,
                                        _pod(f"p{i}"))
            await asyncio.to_thread(core.create_namespaced_pod, cluster.namespace,
                                    _pod("other", managed=False))
            for _ in range(100):
                done = {n for k, n, ph in seen if ph == "Succeeded"}
                if len(done) == 5:
                    break
                await asyncio.sleep(0.2)
            await asyncio.to_thread(core.delete_namespaced_pod, "p0", cluster.namespace)
            for _ in range(50):
                if ("DELETED", "p0") in {(k, n) for k, n, _ in seen}:
                    break
                await asyncio.sleep(0.2)
            return dict(kube.calls)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await kube.aclose()

    calls = asyncio.run(main())
    names = {n for _, n, _ in seen}
    assert names == {f"p{i}" for i in range(5)}                 # the selector holds
    assert {n for _, n, ph in seen if ph == "Succeeded"} == names
    assert ("DELETED", "p0") in {(k, n) for k, n, _ in seen}
    assert calls == {"list pods": 1, "watch pods": 1}                     # no GET per pod


def test_a_relist_reports_what_vanished_while_not_watching(
        cluster: Cluster, admin_kubeconfig: Path) -> None:
    core = client.CoreV1Api(cluster.api)
    seen: list[tuple[str, str]] = []

    async def main() -> int:
        kube = AsyncKube.connect(str(admin_kubeconfig), None, cluster.namespace)
        watch = PodWatch(kube, SELECTOR, lambda k, p: seen.append((k, p["metadata"]["name"])))
        try:
            await asyncio.to_thread(core.create_namespaced_pod, cluster.namespace, _pod("a"))
            await watch._relist()
            assert ("ADDED", "a") in seen
            await asyncio.to_thread(core.delete_namespaced_pod, "a", cluster.namespace)
            for _ in range(25):                # the test bed deletes pods at once
                items, _ = await kube.list_pods(SELECTOR)
                if not items:
                    break
                await asyncio.sleep(0.2)
            await watch._relist()              # what a 410 Gone leads to
            return watch.relists
        finally:
            await kube.aclose()

    assert asyncio.run(main()) == 2
    assert seen[-1] == ("DELETED", "a")
