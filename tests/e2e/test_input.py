"""Input mistakes and error text, end to end with a real kube-apiserver and a real Prometheus:
a query that fails is reported once (with the Deployments it leaves without a reading), not in
every row; what Prometheus says about a query it refuses reads as its own message, never as raw
JSON in a byte-string repr; `-o json` is one document with `schemaVersion` and `error`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.net import free_port
from testbed.prometheus import Prometheus
from tests.conftest import Cluster, run_cli, write_config

pytestmark = pytest.mark.integration

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}
RPS = {"name": "rps", "preset": "http_requests_per_second",
       "target": {"type": "AverageValue", "value": 100}}
# Valid PromQL, so the config loads; this Prometheus (2.x) refuses the function.
REFUSED = {"name": "spread", "query": "sum by (deployment) (mad_over_time(x[5m]))",
           "target": {"type": "Value", "value": 1}}


def test_a_failed_query_is_printed_once_with_the_deployments_it_affects(
        cluster: Cluster, admin_kubeconfig: Path, tmp_path: Path) -> None:
    for name in ("api", "web", "worker"):
        cluster.deployment(name, 2)
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, dead, [MEMORY, RPS],
                       [{"deployment": "api"}, {"deployment": "web"}, {"deployment": "worker"}],
                       minReplicas=1, maxReplicas=10)
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig),
                    "--dry-run", "-o", "wide"])
    assert proc.returncode == 3, proc.stderr
    text = " ".join(proc.stdout.split())
    error = f"cannot connect to Prometheus at {dead}"
    assert text.count(error) == 2, proc.stdout   # once per metric, not once per Deployment
    for metric in ("memory", "rps"):
        assert f"metric {metric}: {error} (no reading for api, web, worker)" in text
    assert text.count("no reading / 80% query failed, see below") == 3      # memory, each row
    assert text.count("no reading / 100 per replica query failed, see below") == 3   # rps
    assert all(cluster.replicas(n) == 2 for n in ("api", "web", "worker"))


def test_a_query_prometheus_refuses_reads_as_its_message(
        cluster: Cluster, prometheus: Prometheus, admin_kubeconfig: Path,
        tmp_path: Path) -> None:
    cluster.deployment("api", 2)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY, REFUSED],
                       [{"deployment": "api"}], minReplicas=1, maxReplicas=10)
    said = ('Prometheus refused the query: HTTP 400: bad_data: invalid parameter "query": '
            '1:22: parse error: unknown function with name "mad_over_time"')
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig),
                    "--dry-run", "-o", "json"])
    doc = json.loads(proc.stdout)
    assert (doc["schemaVersion"], doc["error"], doc["exitCode"]) == (1, None, proc.returncode)
    assert doc["metricErrors"]["spread"] == said
    validate = run_cli(["config", "validate", "-c", str(cfg), "--online"])
    assert validate.returncode == 2
    assert said in " ".join(validate.stderr.split())
    for out in (proc.stdout, proc.stderr, validate.stderr):
        assert "b'" not in out and "\\\\\"" not in out and '"status":"error"' not in out


def test_validate_online_against_a_live_prometheus_passes_and_json_says_so(
        prometheus: Prometheus, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", "devtrip", prometheus.url, [MEMORY],
                       [{"deployment": "api"}])
    proc = run_cli(["config", "validate", "-c", str(cfg), "--online", "-o", "json"])
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exitCode"] == 0, proc.stderr
    assert (doc["valid"], doc["online"], doc["error"]) == (True, True, None)
