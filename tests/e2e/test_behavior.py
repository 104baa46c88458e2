"""The HPA behaviour across cron runs, against the real test bed: a new `devscale check` process
per step, the clock set by the test (`--now`), the history carried in the cluster's ConfigMap.

The scenario is the seed system's queue workers (config/queue-workers.yaml): 1 waiting job per
pod, 1 to 3 pods, scale up after a 60 s window by at most +100 % per 60 s, scale down after a
300 s window by at most −50 % per 60 s.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import NOW, ROOT, Cluster, run_cli

pytestmark = pytest.mark.integration

QUEUE = "devtrip_queue_waiting_jobs"


def replay(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
           kubeconfig: Path, config: Path, steps: list[tuple[int, int]]
           ) -> list[tuple[int, int, str]]:
    """Run one check per (second, waiting jobs) step; return (second, replicas, reason)."""
    env = {"NAMESPACE": cluster.namespace,
           "METRICS_SERVER": prometheus.url.removeprefix("http://")}
    timeline = []
    try:
        for second, waiting in steps:
            exporter.set_gauge(QUEUE, waiting, namespace=cluster.namespace, queue="jobs")
            _wait_for_reading(prometheus, cluster.namespace, waiting)
            at = (NOW + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S%z")
            proc = run_cli(["check", "-c", str(config), "--kubeconfig", str(kubeconfig),
                            "-o", "json", "--now", at], env=env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            [d] = json.loads(proc.stdout)["deployments"]
            timeline.append((second, cluster.replicas("queue-worker"), d["reason"]))
    finally:
        exporter.set_gauge(QUEUE, None, namespace=cluster.namespace, queue="jobs")
    return timeline


def _wait_for_reading(prometheus: Prometheus, namespace: str, waiting: int) -> None:
    query = f'sum({QUEUE}{{namespace="{namespace}", queue="jobs"}})'
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        result = prometheus.query(query)
        if result and float(result[0]["value"][1]) == waiting:
            return
        time.sleep(0.3)
    raise AssertionError(f"Prometheus never read {waiting} waiting jobs")


def test_seed_queue_scenario(cluster: Cluster, exporter: SyntheticExporter,
                             prometheus: Prometheus, admin_kubeconfig: Path) -> None:
    cluster.deployment("queue-worker", 1)
    steps = [(0, 0), (61, 2), (122, 5), (183, 0), (244, 0), (366, 0), (421, 0), (423, 0)]
    timeline = replay(cluster, exporter, prometheus, admin_kubeconfig,
                      ROOT / "config" / "queue-workers.yaml", steps)
    assert timeline == [
        (0, 1, "ScaleDownStabilized"),      # 0 waiting → 1 pod (first sight seeds the window)
        (61, 2, "DesiredWithinRange"),      # 2 waiting → 2 pods
        (122, 3, "TooManyReplicas"),        # 5 waiting → 3 pods, the maximum
        (183, 3, "ScaleDownStabilized"),    # queue empty: the 300 s window holds 3
        (244, 3, "ScaleDownStabilized"),
        (366, 3, "ScaleDownStabilized"),
        (421, 3, "ScaleDownStabilized"),    # the t=122 recommendation is still inside
        (423, 1, "TooFewReplicas"),         # window passed: −50 % of 3 allows 1, the minimum
    ], timeline


def test_seed_queue_scenario_with_cooldowns(cluster: Cluster, exporter: SyntheticExporter,
                                            prometheus: Prometheus, admin_kubeconfig: Path,
                                            tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "config" / "queue-workers.yaml").read_text())
    doc["scaling"].update(scaleUpCooldownSeconds=120, scaleDownCooldownSeconds=300)
    config = tmp_path / "queue-cooldowns.yaml"
    config.write_text(yaml.safe_dump(doc))
    cluster.deployment("queue-worker", 1)
    steps = [(0, 0), (61, 2), (122, 5), (182, 5), (242, 0), (481, 0), (482, 0)]
    timeline = replay(cluster, exporter, prometheus, admin_kubeconfig, config, steps)
    assert timeline == [
        (0, 1, "ScaleDownStabilized"),
        (61, 2, "DesiredWithinRange"),
        (122, 2, "ScaleUpCooldown"),        # scaled at 61: no scale-up until 181
        (182, 3, "TooManyReplicas"),
        (242, 3, "ScaleDownStabilized"),    # the window (t=182's 5) and the cooldown both hold
        (481, 3, "ScaleDownStabilized"),
        (482, 1, "TooFewReplicas"),         # both end at 182 + 300: an entry that old is out
    ], timeline


def test_table_says_which_window_holds_and_until_when(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path) -> None:
    cluster.deployment("queue-worker", 3)
    env = {"NAMESPACE": cluster.namespace,
           "METRICS_SERVER": prometheus.url.removeprefix("http://")}
    config = str(ROOT / "config" / "queue-workers.yaml")
    exporter.set_gauge(QUEUE, 0, namespace=cluster.namespace, queue="jobs")
    try:
        _wait_for_reading(prometheus, cluster.namespace, 0)
        proc = run_cli(["check", "-c", config, "--kubeconfig", str(admin_kubeconfig),
                        "--now", NOW.strftime("%Y-%m-%dT%H:%M:%S%z"), "-o", "wide"], env=env)
    finally:
        exporter.set_gauge(QUEUE, None, namespace=cluster.namespace, queue="jobs")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    until = (NOW + timedelta(seconds=300)).isoformat(timespec="seconds")
    # the row: how much longer; the breakdown below it (-o wide): until when
    assert "ScaleDownStabilized: 300s scale-down stabilization window holds 3 (for 5m)" in text
    assert f"(until {until}, 5m from now)" in text
