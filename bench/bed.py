"""The test bed a benchmark runs on (the whole cluster, Redis, a namespace of its own, stopped
when the benchmark ends) and the Deployments it fills the cluster with."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.redis import Redis  # noqa: E402


@dataclass(frozen=True)
class Bed:
    work: Path
    controlplane: ControlPlane
    kubeconfig: Path
    redis_url: str
    namespace: str


@contextmanager
def bed(name: str, namespace: str = "bench") -> Iterator[Bed]:
    """Start the cluster and Redis, make `namespace`, and stop both afterwards."""
    from kubernetes import client

    from devtrip_scale.kube import connect

    work = Path(tempfile.mkdtemp(prefix=f"devscale-bench-{name}-"))
    cp = ControlPlane(work / "cp").start()
    redis = Redis(work / "redis").start()
    try:
        kubeconfig = cp.kubeconfig(work / "kubeconfig")
        api = connect(str(kubeconfig))
        try:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        finally:
            api.close()
        yield Bed(work, cp, kubeconfig, redis.url, namespace)
    finally:
        redis.stop()
        cp.stop()


def deployment(name: str, labels: dict[str, str],
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment of 2 replicas whose pods are labelled `labels` (its selector: `app`)."""
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": labels["app"]}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "containers": [{"name": "app", "image": "x.invalid/a:1"}]}}}}


def stop_controller_manager(cp: ControlPlane) -> None:
    """Stop the bed's kube-controller-manager: Deployments made from now on get no ReplicaSets
    and no pods, and nothing overwrites the status `create_ready` writes."""
    for component in cp.components:
        if component.name == "controller-manager":
            component.stop()


def create_ready(api: Any, deployments: Sequence[tuple[str, str, dict[str, str]]],
                 threads: int = 8) -> None:
    """Create each (namespace, name, annotations) Deployment, labelled app=name and tier=bench,
    and write its status as 2 replicas, 2 Ready through the status subresource, as the
    Deployment controller would have (`stop_controller_manager` first)."""
    from kubernetes import client

    apps = client.AppsV1Api(api)

    def one(where: tuple[str, str, dict[str, str]]) -> None:
        ns, name, annotations = where
        apps.create_namespaced_deployment(
            ns, deployment(name, {"app": name, "tier": "bench"}, annotations))
        apps.patch_namespaced_deployment_status(name, ns, {"status": {
            "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "updatedReplicas": 2, "observedGeneration": 1}})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, deployments))


def write_json(path: Path | None, figures: Any) -> None:
    """The figures as JSON, where --json asks for them."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2))
