"""ConfigMapHistory against a real kube-apiserver: round trip, first run without a ConfigMap,
corrupt entries reported and treated as empty, concurrent writers merged by resourceVersion."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devtrip_scale.scaling.history import ConfigMapHistory, decode, encode
from devtrip_scale.scaling.models import History, Recommendation, ScaleEvent
from tests.conftest import NOW, Cluster

SAMPLE = History((Recommendation(NOW, 3),), (ScaleEvent(NOW - timedelta(seconds=30), 2, 3),), 3)


def test_encode_decode_round_trip() -> None:
    assert decode(encode(SAMPLE)) == SAMPLE


@pytest.mark.parametrize("text", ["{", "[]", '{"recommendations": 3}',
                                  '{"recommendations": [["2026-01-01T00:00:00", 1]], '
                                  '"scaleEvents": []}'])
def test_decode_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.integration
def test_round_trip_through_a_real_configmap(cluster: Cluster) -> None:
    store = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history")
    assert store.load() == ({}, [])
    store.save({"uid-1": (SAMPLE, "api"), "uid-2": (SAMPLE, "web")})
    again = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history")
    assert again.load() == ({"uid-1": SAMPLE, "uid-2": SAMPLE}, [])
    again.save({}, remove=["uid-2"])          # a Deployment that is gone: its entry goes too
    assert ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history").load() == (
        {"uid-1": SAMPLE}, [])


def test_an_entry_names_its_deployment_for_people() -> None:
    assert '"deployment":"api"' in encode(SAMPLE, "api")


@pytest.mark.integration
def test_corrupt_entry_is_reported_and_treated_as_empty(cluster: Cluster) -> None:
    from kubernetes import client

    client.CoreV1Api(cluster.api).create_namespaced_config_map(cluster.namespace, {
        "metadata": {"name": "devscale-history"},
        "data": {"api": "not json", "web": encode(SAMPLE)}})
    histories, warnings = ConfigMapHistory(cluster.api, cluster.namespace,
                                           "devscale-history").load()
    assert histories == {"web": SAMPLE}
    assert len(warnings) == 1 and "history of api" in warnings[0] and "corrupt" in warnings[0]


@pytest.mark.integration
def test_concurrent_writers_keep_each_others_entries(cluster: Cluster) -> None:
    first = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history")
    second = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history")
    first.save({"seed": (SAMPLE, "seed")})
    first.load()
    second.load()
    first.save({"api": (SAMPLE, "api")})
    second.save({"web": (SAMPLE, "web")})          # stale resourceVersion: 409, re-read, retried
    histories, _ = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history").load()
    assert set(histories) == {"seed", "api", "web"}


@pytest.mark.integration
def test_a_fleet_pass_reads_every_history_by_one_list_and_writes_each_with_its_version(
        cluster: Cluster) -> None:
    """fleet_histories: one cluster-wide list (no GET per namespace) gives each store what it
    holds and its resourceVersion; a write under that version that another writer beat is a
    conflict, read again and retried, keeping both writers' entries."""
    from devtrip_scale.core.trace import Trace
    from devtrip_scale.scaling.history import fleet_histories

    ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history").save(
        {"uid-api": (SAMPLE, "api"), "uid-old": (SAMPLE, "old")})
    trace = Trace()
    store = fleet_histories(cluster.api, "devscale-history", trace)(cluster.namespace)
    assert store.load() == ({"uid-api": SAMPLE, "uid-old": SAMPLE}, [])
    assert [e.detail.split()[:2] for e in trace.entries] == [["list", "configmaps"]]
    other = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history")
    other.load()
    other.save({"uid-web": (SAMPLE, "web")})           # the listed version is stale now
    later = SAMPLE._replace(last_written=5)
    store.save({"uid-api": (later, "api")}, remove=["uid-old"])
    verbs = [e.detail.split()[0] for e in trace.entries]
    assert verbs == ["list", "patch", "get", "patch"], verbs   # 409, read again, retried
    histories, _ = ConfigMapHistory(cluster.api, cluster.namespace, "devscale-history").load()
    assert histories == {"uid-api": later, "uid-web": SAMPLE}
    # a namespace without the ConfigMap: the list says so, the first save creates it
    assert fleet_histories(cluster.api, "devscale-other", trace)(cluster.namespace).load() \
        == ({}, [])
