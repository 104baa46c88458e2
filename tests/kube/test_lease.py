"""LeaseLock against a real kube-apiserver: MicroTime the server accepts, a live holder refused
and named, an expired lease taken over with leaseTransitions bumped, release frees it, and two
runners racing for one expired lease cannot both win."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtrip_scale.core.errors import KubeConflict, LeaseHeld
from devtrip_scale.kube.lease import LeaseLock, micro_time
from tests.conftest import Cluster

pytestmark = pytest.mark.integration


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert micro_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"


def lease(cluster: Cluster) -> object:
    from kubernetes import client

    return client.CoordinationV1Api(cluster.api).read_namespaced_lease("devscale-lock",
                                                                       cluster.namespace)


def test_acquire_refuses_a_live_holder_and_release_frees(cluster: Cluster) -> None:
    first = LeaseLock(cluster.api, cluster.namespace, identity="runner-a")
    first.acquire()
    second = LeaseLock(cluster.api, cluster.namespace, identity="runner-b")
    with pytest.raises(LeaseHeld, match=r"holds Lease .*: runner-a, since"):
        second.acquire()
    first.release()
    second.acquire()
    assert lease(cluster).spec.holder_identity == "runner-b"  # type: ignore[attr-defined]


def test_expired_lease_is_taken_over(cluster: Cluster) -> None:
    past = datetime.now(UTC) - timedelta(seconds=120)
    LeaseLock(cluster.api, cluster.namespace, identity="crashed", duration_seconds=30,
              clock=lambda: past).acquire()
    taker = LeaseLock(cluster.api, cluster.namespace, identity="runner-b")
    taker.acquire()
    spec = lease(cluster).spec  # type: ignore[attr-defined]
    assert (spec.holder_identity, spec.lease_transitions) == ("runner-b", 1)


def test_racing_for_an_expired_lease_only_one_wins(cluster: Cluster) -> None:
    past = datetime.now(UTC) - timedelta(seconds=120)
    LeaseLock(cluster.api, cluster.namespace, identity="crashed", duration_seconds=30,
              clock=lambda: past).acquire()
    a = LeaseLock(cluster.api, cluster.namespace, identity="a")
    b = LeaseLock(cluster.api, cluster.namespace, identity="b")
    # Both read the expired lease before either writes: the second write carries a stale
    # resourceVersion and the API server refuses it.
    from kubernetes import client
    seen = client.CoordinationV1Api(cluster.api).read_namespaced_lease("devscale-lock",
                                                                       cluster.namespace)
    a.acquire()
    with pytest.raises(KubeConflict):
        b._write("update", datetime.now(UTC), datetime.now(UTC), transitions=2,
                 resource_version=seen.metadata.resource_version)
    assert lease(cluster).spec.holder_identity == "a"  # type: ignore[attr-defined]


def test_renew_keeps_it_and_detects_loss(cluster: Cluster) -> None:
    lock = LeaseLock(cluster.api, cluster.namespace, identity="a")
    lock.acquire()
    lock.renew()
    from kubernetes import client
    api = client.CoordinationV1Api(cluster.api)
    stolen = api.read_namespaced_lease("devscale-lock", cluster.namespace)
    stolen.spec.holder_identity = "thief"
    api.replace_namespaced_lease("devscale-lock", cluster.namespace, stolen)
    with pytest.raises(LeaseHeld, match=r"took it over: .* held by thief, since "):
        lock.renew()
