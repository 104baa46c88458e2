"""`devscale status` against the real kube-apiserver after real `devscale check` runs: the
targets, replicas, the last scale and its why (from the Event check wrote), the last decision and
held-until recomputed from the history ConfigMap, `-o json`, `-n`/`--kubeconfig`/`--context`/
`--deployment`, an unknown Deployment, that status changes nothing, and that with the CronJob's
Role (no `list events`) it says what it could not read and shows the rest."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtrip_scale.scaling import manifests
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import (
    TEST_WINDOW,
    Cluster,
    run_cli,
    service_account_kubeconfig,
    settle,
    write_config,
)

pytestmark = pytest.mark.integration

CPU = {"name": "cpu", "preset": "cpu_utilization", "window": TEST_WINDOW,
       "target": {"type": "Utilization", "value": 70}}


def versions(cluster: Cluster) -> tuple[str, str]:
    from kubernetes import client

    deployment = client.AppsV1Api(cluster.api).read_namespaced_deployment("api", cluster.namespace)
    history = client.CoreV1Api(cluster.api).read_namespaced_config_map("devscale-history",
                                                                       cluster.namespace)
    return deployment.metadata.resource_version, history.metadata.resource_version


def status(cfg: Path, kubeconfig: Path, cluster: Cluster, *extra: str
           ) -> tuple[int, dict[str, Any]]:
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    proc = run_cli(["status", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "--context",
                    context, "-n", cluster.namespace, "-o", "json", *extra])
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_status_after_real_checks(cluster: Cluster, controlplane: ControlPlane,
                                  exporter: SyntheticExporter, prometheus: Prometheus,
                                  admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("api", 2)
    cluster.deployment("web", 3)
    cfg = write_config(tmp_path / "c.yaml", "elsewhere", prometheus.url, [CPU],
                       [{"deployment": "api"}, {"deployment": "web"}], minReplicas=2,
                       maxReplicas=10)
    check = ["check", "-c", str(cfg), "-n", cluster.namespace, "--kubeconfig",
             str(admin_kubeconfig)]
    exporter.set_load(cluster.namespace, "api", pods=2, cpu_percent=140)
    exporter.set_load(cluster.namespace, "web", pods=3, cpu_percent=70)
    settle()
    assert run_cli(check).returncode == 0
    assert cluster.replicas("api") == 4
    exporter.set_load(cluster.namespace, "api", pods=4, cpu_percent=20)
    settle()
    second = run_cli(check)
    assert second.returncode == 0, second.stderr
    assert cluster.replicas("api") == 4          # the 300 s scale-down window holds 4
    before = versions(cluster)

    code, doc = status(cfg, admin_kubeconfig, cluster, "-d", "api")
    assert code == 0, doc
    assert doc["schemaVersion"] == 1 and doc["namespace"] == cluster.namespace
    [api] = doc["deployments"]
    assert api["name"] == "api" and api["error"] is None
    assert api["targets"] == [{"metric": "cpu", "type": "Utilization", "target": 70.0}]
    assert (api["replicas"], api["minReplicas"], api["maxReplicas"]) == (4, 2, 10)
    scale = api["lastScale"]
    assert (scale["from"], scale["to"]) == (2, 4)
    assert scale["why"].startswith("Scaled from 2 to 4: cpu 1") and \
        scale["why"].endswith("against a target of 70 (DesiredWithinRange)")
    assert api["recommendation"] == 2
    assert api["lastDecision"]["reason"] == "ScaleDownStabilized"
    assert api["lastDecision"]["desiredReplicas"] == 4
    held = datetime.fromisoformat(api["heldUntil"])
    assert held == datetime.fromisoformat(scale["time"]) + timedelta(seconds=300)
    assert api["lastEvent"]["reason"] == "Scaled" and api["lastWritten"] == 4
    assert versions(cluster) == before              # status wrote nothing

    table = run_cli(["status", "-c", str(cfg), "-n", cluster.namespace, "--kubeconfig",
                     str(admin_kubeconfig)])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"2 Deployments in namespace {cluster.namespace}"
    [row] = [line.split() for line in lines if line.startswith("api ")]
    assert row[4] == "ScaleDownStabilized" and row[5] == "for" and row[-4:-1] == ["2", "→", "4"]
    assert any(line.startswith("web ") for line in lines)
    wide = run_cli(["status", "-c", str(cfg), "-n", cluster.namespace, "--kubeconfig",
                    str(admin_kubeconfig), "-o", "wide"])
    assert wide.returncode == 0, wide.stderr
    assert f"held until: {api['heldUntil']}" in wide.stdout
    assert f"last scale: 2 → 4 at {scale['time']}: Scaled from 2 to 4" in wide.stdout

    code, doc = status(cfg, admin_kubeconfig, cluster, "-d", "nope")
    assert code == 5
    assert doc["deployments"][0]["error"] == (f"--deployment nope is not a target of this "
                                              f"config in namespace {cluster.namespace}")

    cluster.apply(manifests.rbac(cluster.namespace))
    account = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    code, doc = status(cfg, account, cluster, "-d", "api")
    assert code == 0, doc
    [warning] = doc["warnings"]
    assert warning.startswith("Events not read, the last scale's reason may be missing: "
                              f"forbidden: cannot list events in namespace {cluster.namespace}")
    [api] = doc["deployments"]
    assert api["lastDecision"]["reason"] == "ScaleDownStabilized" and api["lastEvent"] is None
    assert (api["lastScale"]["from"], api["lastScale"]["to"], api["lastScale"]["why"]) == \
        (2, 4, None)
