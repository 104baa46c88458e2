"""Every way of running devscale, checked by the real tool that reads it: the manifests by the
real kube-apiserver (server-side apply, dry run), the RBAC by a check authenticated with a
ServiceAccount token the API server minted, the rules by promtool, the dashboard's queries by
Prometheus, the crontab entry by Debian's crontab, and the Jenkinsfile's shell step by bash."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devtrip_scale import manifests as m
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import ROOT, Cluster, run_cli, service_account_kubeconfig, settle, write_config

pytestmark = pytest.mark.integration

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


def test_every_manifest_is_accepted_by_the_api_server(cluster: Cluster) -> None:
    ns = cluster.namespace
    shipped = [d for f in ("rbac.yaml", "state.yaml", "cronjob.yaml")
               for d in yaml.safe_load_all((ROOT / "deploy" / "base" / f).read_text()) if d]
    for d in shipped:
        d["metadata"]["namespace"] = ns
    generated = [*m.rbac(ns), *m.state(ns), m.cronjob(ns),
                 m.config_map(ns, (ROOT / "deploy/base/devscale.yaml").read_text()),
                 m.hpa("api", ns), m.loop_deployment(ns)]
    printed = yaml.safe_load(run_cli(["manifests", "hpa", "web", "-n", ns]).stdout)
    cluster.apply([*shipped, *generated, printed], dry_run=True)


def test_the_role_is_enough_and_no_more(cluster: Cluster, controlplane: ControlPlane,
                                        exporter: SyntheticExporter, prometheus: Prometheus,
                                        kube: Any, tmp_path: Path) -> None:
    from kubernetes import client

    ns = cluster.namespace
    cluster.apply([*m.rbac(ns), *m.state(ns)])
    cluster.deployment("api", 2)
    exporter.set_load(ns, "api", pods=2, memory_percent=200)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["warnings"] == []   # history, events, HPA list: all allowed
    assert cluster.replicas("api") == 5
    other = f"{ns}-other"
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": other}})
    try:
        refused = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig),
                           "-n", other])
    finally:
        client.CoreV1Api(kube).delete_namespace(other)
    assert refused.returncode == 4
    assert f"forbidden: cannot get leases/devscale-lock in namespace {other}" in \
        " ".join(refused.stderr.split())


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    rules = ROOT / "deploy" / "prometheus"
    printed = run_cli(["manifests", "prometheus-rules"]).stdout
    assert yaml.safe_load(printed) == m.prometheus_rules()
    for args in (["check", "rules", "devscale-rules.yaml"],
                 ["test", "rules", "devscale-rules.test.yaml"]):
        proc = subprocess.run(["promtool", *args], cwd=rules, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout


def test_every_dashboard_query_is_accepted_by_prometheus(prometheus: Prometheus) -> None:
    dashboard = json.loads(run_cli(["manifests", "grafana-dashboard"]).stdout)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) == len(m.dashboard_queries()) >= 8
    for expr in exprs:
        r = httpx.get(f"{prometheus.url}/api/v1/query",
                      params={"query": expr.replace("$namespace", "devtrip")}, timeout=10)
        assert r.status_code == 200, (expr, r.text)


@pytest.fixture
def cron_user() -> str:
    """A throw-away user whose crontab the test may change (never the developer's own)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a throw-away user's crontab; CI runs as root")
    name = "devscale-cron-test"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
    subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
    return name


def test_cron_install_is_idempotent_and_the_entry_runs(cron_user: str, tmp_path: Path) -> None:
    cfg = ROOT / "config" / "devtrip.yaml"
    log = tmp_path / "check.log"
    args = ["cron", "install", "-c", str(cfg), "--every", "2m", "--log", str(log),
            "--user", cron_user]
    first, second = run_cli(args), run_cli(args)
    assert first.returncode == 0 and first.stdout.startswith("installed"), first.stderr
    assert second.stdout.startswith("already installed")
    table = subprocess.run(["crontab", "-u", cron_user, "-l"], capture_output=True,
                           text=True, check=True).stdout
    [entry] = [line for line in table.splitlines() if "# devscale:" in line]
    assert entry.startswith("*/2 * * * * ") and "/flock -n /tmp/devscale-" in entry
    assert f"--config {cfg}" in entry and f">> {log} 2>&1" in entry
    shown = run_cli(["cron", "show", "--user", cron_user]).stdout.strip()
    assert shown == entry
    # What cron would run: flock holds a lock, devscale runs and writes to the log.
    command = entry.split(" ", 5)[5].rsplit("  # ", 1)[0]
    subprocess.run(["sh", "-c", command], check=False, timeout=60)
    assert "devscale" in log.read_text()
    assert run_cli(["cron", "uninstall", "-c", str(cfg), "--user", cron_user]).stdout.strip() \
        == "removed 1 entry"
    assert run_cli(["cron", "show", "--user", cron_user]).stdout.strip() == \
        "no devscale entry in the crontab"


def test_cron_refuses_a_schedule_cron_cannot_keep() -> None:
    proc = run_cli(["cron", "install", "-c", str(ROOT / "config" / "devtrip.yaml"),
                    "--schedule", "*/2 25 * * *"])
    assert proc.returncode == 2 and "hour '25' is outside 0-23" in proc.stderr


def test_jenkinsfile_shell_step_runs(cluster: Cluster, exporter: SyntheticExporter,
                                     prometheus: Prometheus, admin_kubeconfig: Path,
                                     tmp_path: Path) -> None:
    text = (ROOT / "jenkins" / "Jenkinsfile").read_text()
    assert "stage('Auto-Scaling Check')" in text
    [script] = re.findall(r"sh '''(.*?)'''", text, re.S)
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    devscale = shutil.which("devscale")
    assert devscale is not None, "the console script is installed by scripts/setup.sh"
    env = {"PATH": f"{Path(devscale).parent}:/usr/bin:/bin", "DEVSCALE_CONFIG": str(cfg),
           "KUBECONFIG": str(admin_kubeconfig), "HOME": str(tmp_path)}
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True, timeout=120)
    assert (tmp_path / "devscale-status").read_text().split() == ["ok", "0"]
    assert json.loads((tmp_path / "devscale-check.json").read_text())["deployments"][0][
        "applied"] is True
    assert cluster.replicas("api") == 5
