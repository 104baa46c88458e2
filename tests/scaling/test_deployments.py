"""DeploymentTarget against a real kube-apiserver: list by selector, scale through the
subresource, a stale resourceVersion refused with 409, a vanished Deployment named (404)."""

from __future__ import annotations

import pytest

from devtrip_scale.core.errors import KubeConflict, KubeNotFound
from devtrip_scale.scaling.deployments import DeploymentTarget
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
