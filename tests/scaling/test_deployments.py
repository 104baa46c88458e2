"""DeploymentTarget and ClusterDeployments against a real kube-apiserver: list by selector,
paged lists (the server answering with `continue` tokens) that return every Deployment once,
scale through the subresource, a stale resourceVersion refused with 409, a vanished Deployment
named (404)."""

from __future__ import annotations

import pytest

from devtrip_scale.core.errors import KubeConflict, KubeNotFound
from devtrip_scale.core.trace import Trace
from devtrip_scale.scaling.deployments import ClusterDeployments, DeploymentTarget
from tests.conftest import Cluster

pytestmark = pytest.mark.integration


def test_list_and_scale(cluster: Cluster) -> None:
    cluster.deployment("api", 2, labels={"tier": "api"})
    cluster.deployment("db", 1)
    target = DeploymentTarget(cluster.api, cluster.namespace)
    assert [w.name for w in target.list("tier=api")] == ["api"]
    [api] = target.list("tier=api")
    target.scale("api", 5, api.resource_version)
    assert cluster.replicas("api") == 5


@pytest.mark.parametrize(("page_size", "pages"), [(2, 3), (5, 1), (500, 1)],
                         ids=["three-pages", "exactly-one-page", "default-size"])
def test_list_pages_through_continue(cluster: Cluster, page_size: int, pages: int) -> None:
    for i in range(5):
        cluster.deployment(f"svc-{i}", 1 + i % 2, labels={"tier": "bench"}, ready=False)
    cluster.deployment("other", 1, ready=False)
    trace = Trace()
    listed = DeploymentTarget(cluster.api, cluster.namespace, trace, page_size).list("tier=bench")
    assert [(w.name, w.replicas, w.namespace) for w in listed] == [
        (f"svc-{i}", 1 + i % 2, cluster.namespace) for i in range(5)]
    assert all(w.resource_version and w.uid and w.labels["tier"] == "bench" for w in listed)
    details = [e.detail for e in trace.entries]
    assert len(details) == pages
    assert details[0] == (f"list deployments -n {cluster.namespace} -l tier=bench "
                          f"--limit {page_size}")
    assert all(d.endswith("--continue") for d in details[1:])


def test_cluster_list_pages_across_namespaces(cluster: Cluster) -> None:
    for i in range(3):
        cluster.deployment(f"svc-{i}", 2, labels={"paged": cluster.namespace})
    trace = Trace()
    listed = ClusterDeployments(cluster.api, trace).list_all(f"paged={cluster.namespace}", 2)
    assert sorted((w.namespace, w.name, w.ready_replicas) for w in listed) == [
        (cluster.namespace, f"svc-{i}", 2) for i in range(3)]
    assert trace.count("kube") == 2


def test_stale_resource_version_is_a_conflict(cluster: Cluster) -> None:
    cluster.deployment("api", 2)
    target = DeploymentTarget(cluster.api, cluster.namespace)
    stale = target.get("api").resource_version
    cluster.set_replicas("api", 3)            # someone else writes in between
    with pytest.raises(KubeConflict, match="conflict on patch deployments/scale/api"):
        target.scale("api", 6, stale)
    assert cluster.replicas("api") == 3


def test_vanished_deployment_is_named(cluster: Cluster) -> None:
    target = DeploymentTarget(cluster.api, cluster.namespace)
    with pytest.raises(KubeNotFound, match=f"deployments/gone not found in namespace "
                                           f"{cluster.namespace}"):
        target.get("gone")
