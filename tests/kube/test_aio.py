"""The async pod client against the real API server: create (409 AlreadyExists = success),
delete (404 = already gone), list, a finished pod's log, Events; 403 names the verb, the
resource and the RBAC rule; an unreachable server is a clear error; the write rate limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devtrip_scale.core.errors import KubeError, KubeForbidden
from devtrip_scale.kube.aio import AsyncKube, RateLimit
from devtrip_scale.workers import SELECTOR
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.pods import worker_pod
from testbed import kwok
from testbed.controlplane import ControlPlane
from testbed.net import wait_until
from tests.conftest import Cluster

TEMPLATE = WorkerModel.model_validate({
    "image": "w:1", "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                  "limits": {"cpu": "10m", "memory": "8Mi"}},
    "annotations": {kwok.RUN_SECONDS: "0"}})


@pytest.mark.integration
def test_pods_create_twice_list_log_delete(cluster: Cluster, admin_kubeconfig: Path) -> None:
    async def main() -> None:
        kube = AsyncKube.connect(str(admin_kubeconfig), None, cluster.namespace)
        try:
            body = worker_pod(TEMPLATE, "t", 0, 0, 1, "1-0")
            assert await kube.create_pod(body) is True
            assert await kube.create_pod(body) is False          # 409: already there
            cluster.pod_log("w-t-0-0", ["hello"], container="worker")
            items, version = await kube.list_pods(SELECTOR)
            assert [p["metadata"]["name"] for p in items] == ["w-t-0-0"] and version
            await asyncio.to_thread(wait_until, lambda: "hello" in asyncio.run(
                _log(admin_kubeconfig, cluster.namespace)), "the log", timeout=20)
            assert await kube.delete_pod("w-t-0-0") is True
            assert await kube.delete_pod("w-t-0-0") is False     # 404: gone
            assert kube.calls["create pods"] == 2 and kube.calls["delete pods"] == 2
        finally:
            await kube.aclose()

    asyncio.run(main())


async def _log(kubeconfig: Path, namespace: str) -> str:
    kube = AsyncKube.connect(str(kubeconfig), None, namespace)
    try:
        return await kube.read_log("w-t-0-0", "worker")
    finally:
        await kube.aclose()


@pytest.mark.integration
def test_forbidden_names_verb_resource_and_rule(cluster: Cluster, controlplane: ControlPlane,
                                                tmp_path: Path) -> None:
    limited = controlplane.kubeconfig(tmp_path / "limited.yaml", user="limited")

    async def main() -> None:
        kube = AsyncKube.connect(str(limited), None, cluster.namespace)
        try:
            with pytest.raises(KubeForbidden) as e:
                await kube.create_pod(worker_pod(TEMPLATE, "t", 0, 0, 1, "1-0"))
            assert f"cannot create pods/w-t-0-0 in namespace {cluster.namespace}" in str(e.value)
            assert 'resources: ["pods"], verbs: ["create"]' in str(e.value)
            with pytest.raises(KubeForbidden, match="cannot list pods"):
                await kube.list_pods(SELECTOR)
            with pytest.raises(KubeForbidden, match="cannot watch pods"):
                async for _ in kube.watch_pods(SELECTOR, "0"):
                    pass
        finally:
            await kube.aclose()

    asyncio.run(main())


@pytest.mark.integration
def test_unreachable_api_server(controlplane: ControlPlane, tmp_path: Path) -> None:
    import yaml

    path = controlplane.kubeconfig(tmp_path / "k.yaml")
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path.write_text(yaml.safe_dump(doc))

    async def main() -> None:
        kube = AsyncKube.connect(str(path), None, "default")
        try:
            with pytest.raises(KubeError, match=r"list pods in namespace default: API server "
                               r"unreachable .*\(at https://127.0.0.1:9\)"):
                await kube.list_pods(SELECTOR)
        finally:
            await kube.aclose()

    asyncio.run(main())


def test_rate_limit_spaces_writes() -> None:
    async def main() -> float:
        limit = RateLimit(rate=50, burst=2)
        started = time.monotonic()
        for _ in range(12):
            await limit.take()
        return time.monotonic() - started

    took = asyncio.run(main())
    assert 0.18 <= took < 0.5        # 2 at once, then 10 at 50/s
