"""`simulate` against the real test bed: the replay gives the same replica sequence as real
`devscale check` processes fed the same readings at the same times, and it reads its load
from the real Prometheus with range queries."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import NOW, ROOT, Cluster, run_cli, write_config
from tests.e2e.test_behavior import replay

pytestmark = pytest.mark.integration


def test_simulation_equals_a_sequence_of_real_checks(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    waiting = [0, 2, 2, 5, 5, 5, 0, 0, 0, 0, 0, 0, 1]
    steps = [(61 * k, w) for k, w in enumerate(waiting)]
    cluster.deployment("queue-worker", 1)
    config = ROOT / "config" / "queue-workers.yaml"
    real = [replicas for _, replicas, _ in replay(cluster, exporter, prometheus,
                                                   admin_kubeconfig, config, steps)]
    csv = tmp_path / "queue.csv"
    csv.write_text("timestamp,waiting_jobs\n" + "".join(
        f"{(NOW + timedelta(seconds=s)).isoformat()},{w}\n" for s, w in steps))
    proc = run_cli(["simulate", "-c", str(config), "--csv", str(csv), "-d", "queue-worker",
                    "--interval", "61s", "--start-replicas", "1", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)["configs"][0]["deployments"]
    simulated = [step["desired"] for step in outcome["timeline"]]
    assert simulated == real
    assert max(real) == 3 and real[-1] == 1          # the scenario went up and came back


def test_range_input_from_real_prometheus(cluster: Cluster, exporter: SyntheticExporter,
                                          prometheus: Prometheus, tmp_path: Path) -> None:
    ns = cluster.namespace
    jobs = {"name": "waiting_jobs", "target": {"type": "AverageValue", "value": 1},
            "query": 'sum(devtrip_queue_waiting_jobs{namespace="{namespace}"})'}
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [jobs],
                       [{"deployment": "queue-worker"}], minReplicas=1, maxReplicas=10)
    exporter.set_gauge("devtrip_queue_waiting_jobs", 2, namespace=ns, queue="jobs")
    time.sleep(4)
    exporter.set_gauge("devtrip_queue_waiting_jobs", 5, namespace=ns, queue="jobs")
    time.sleep(4)
    exporter.set_gauge("devtrip_queue_waiting_jobs", None, namespace=ns, queue="jobs")
    proc = run_cli(["simulate", "-c", str(cfg), "--from-prometheus", "--since", "12s",
                    "--step", "1s", "--interval", "1s", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)["configs"][0]["deployments"]
    desired = [step["desired"] for step in outcome["timeline"]]
    assert outcome["name"] == "queue-worker"
    assert 2 in desired and 5 in desired              # both recorded levels were replayed
    assert desired.index(2) < desired.index(5)
