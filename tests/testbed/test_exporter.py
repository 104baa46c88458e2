"""The synthetic load behaves like a service: a demand spread over the Ready pods. Told the pods,
the exporter halves each pod's share when the pods double, its counters never go back, and on
the whole bed (cluster, Prometheus, FollowReadyPods) a check after a scale-up holds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.controlplane import ControlPlane
from testbed.exporter import FollowReadyPods, SyntheticExporter, ready_pods
from testbed.prometheus import Prometheus
from tests.conftest import TEST_WINDOW, Cluster, run_cli, settle, write_config


@pytest.fixture
def own_exporter() -> Iterator[SyntheticExporter]:
    exporter = SyntheticExporter()
    yield exporter
    exporter.stop()


def samples(exporter: SyntheticExporter) -> dict[tuple[str, str], float]:
    """(series name, pod) → value, for the per-pod series of the app and cAdvisor."""
    out = {}
    for family in exporter.collect():
        for s in family.samples:
            if "pod" in s.labels and s.name in ("container_cpu_usage_seconds_total",
                                                "container_memory_working_set_bytes",
                                                "devtrip_active_users", "http_requests_total"):
                out[(s.name, s.labels["pod"])] = s.value
    return out


def test_the_demand_is_spread_over_the_ready_pods_and_counters_never_go_back(
        own_exporter: SyntheticExporter) -> None:
    own_exporter.set_load("ns", "api", pods=2, cpu_percent=140, memory_percent=60, rps=100,
                          active_users=150)
    own_exporter.set_pods("ns", "api", ["api-5f6d7-aaaaa", "api-5f6d7-bbbbb"])
    time.sleep(0.2)
    before = samples(own_exporter)
    assert before[("devtrip_active_users", "api-5f6d7-aaaaa")] == 75
    own_exporter.set_pods("ns", "api", ["api-5f6d7-aaaaa", "api-5f6d7-bbbbb", "api-5f6d7-ccccc",
                                        "api-5f6d7-ddddd"])
    time.sleep(0.5)
    after = samples(own_exporter)
    memory = "container_memory_working_set_bytes"
    assert after[(memory, "api-5f6d7-ccccc")] == pytest.approx(before[(memory,
                                                                       "api-5f6d7-aaaaa")] / 2)
    assert after[("devtrip_active_users", "api-5f6d7-ddddd")] == 37.5
    for counter in ("container_cpu_usage_seconds_total", "http_requests_total"):
        assert after[(counter, "api-5f6d7-aaaaa")] > before[(counter, "api-5f6d7-aaaaa")]
        # a new pod's counters start at 0 and grow at half the old per-pod rate
        new, old = after[(counter, "api-5f6d7-ccccc")], after[(counter, "api-5f6d7-aaaaa")]
        assert 0 < new < old
    cpu_rate = after[("container_cpu_usage_seconds_total", "api-5f6d7-ccccc")] / 0.5
    assert cpu_rate == pytest.approx(0.5 * 0.7, rel=0.25)   # 70 % of a 0.5-core request


def test_ready_pods_reads_deployments_from_pod_names_and_readiness() -> None:
    def pod(name: str, ready: str, deleting: bool = False) -> dict[str, object]:
        meta: dict[str, object] = {"name": name}
        if deleting:
            meta["deletionTimestamp"] = "2026-12-04T17:00:00Z"
        return {"metadata": meta, "status": {"conditions": [{"type": "Ready",
                                                             "status": ready}]}}

    assert ready_pods([pod("api-7c9f8-abcde", "True"), pod("api-7c9f8-fghij", "False"),
                       pod("web-front-6b5d4-klmno", "True"),
                       pod("web-front-6b5d4-pqrst", "True", deleting=True),
                       pod("standalone", "True")]) == {"api": ["api-7c9f8-abcde"],
                                                       "web-front": ["web-front-6b5d4-klmno"]}


CPU = {"name": "cpu", "preset": "cpu_utilization", "window": TEST_WINDOW,
       "target": {"type": "Utilization", "value": 70}}


@pytest.mark.integration
def test_a_check_after_a_scale_up_holds_as_on_a_real_service(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        controlplane: ControlPlane, admin_kubeconfig: Path, tmp_path: Path) -> None:
    ns = cluster.namespace
    cluster.deployment("api", 2)
    exporter.set_load(ns, "api", pods=2, cpu_percent=140, ready=[])   # no pod until read
    follower = FollowReadyPods(exporter, ns, lambda: controlplane.api(
        "GET", f"/api/v1/namespaces/{ns}/pods")["items"]).start()
    try:
        settle()
        cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [CPU],
                           [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
        args = ["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig), "-o", "json"]
        first = run_cli(args)
        [api] = json.loads(first.stdout)["deployments"]
        assert (api["currentReplicas"], api["desiredReplicas"], api["action"]) == \
            (2, 4, "scaled up"), first.stdout + first.stderr
        cluster.wait_ready("api", 4)
        settle()     # the rate window now holds only the spread load
        second = run_cli(args)
        [api] = json.loads(second.stdout)["deployments"]
        [cpu] = api["metrics"]
        assert (api["currentReplicas"], api["desiredReplicas"], api["reason"]) == \
            (4, 4, "WithinTolerance"), second.stdout
        assert cpu["reading"] == pytest.approx(70, abs=5)
        assert cluster.replicas("api") == 4
    finally:
        follower.stop()
        exporter.set_load(ns, "api", pods=0)
