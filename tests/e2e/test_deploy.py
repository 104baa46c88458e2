"""Every way of running devscale, checked by the real tool that reads it: each printed manifest
set applied for real to the kube-apiserver with every reference (ServiceAccount, ConfigMap and
key, Secret, Lease, Role, RBAC subject) resolved or named on stderr, the RBAC by a check
authenticated with a ServiceAccount token the API server minted, the rules by promtool, the
dashboard's queries by Prometheus, the crontab entry by Debian's crontab — pinned to its cluster
when the current context changes — a check's push by Debian's Pushgateway and the alerts it
feeds by Prometheus, the Jenkinsfile's shell step by bash, and the README's Deploy recipes as
written, with the real kubectl."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devtrip_scale.scaling import manifests as m
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.net import free_port, wait_until
from testbed.prometheus import Prometheus
from testbed.pushgateway import Pushgateway
from tests import readme
from tests.conftest import ROOT, Cluster, run_cli, service_account_kubeconfig, settle, write_config
from tests.readme import devscale_shim, recipe, run_recipe

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


def _get(cluster: Cluster, api_version: str, kind: str, name: str, namespace: str
         ) -> dict[str, Any] | None:
    """The object as the API server has it, or None."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError

    resource = DynamicClient(cluster.api).resources.get(api_version=api_version, kind=kind)
    try:
        found: dict[str, Any] = resource.get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return None
    return found


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec") if obj["kind"] in (
        "CronJob", "Deployment", "Job") else None


def references(obj: dict[str, Any]) -> list[tuple[str, str, str, str, str | None, bool]]:
    """Every object `obj` refers to: (apiVersion, kind, name, namespace, key, optional)."""
    ns = obj["metadata"]["namespace"]
    refs: list[tuple[str, str, str, str, str | None, bool]] = []
    pod = _pod_spec(obj)
    if pod is not None:
        refs.append(("v1", "ServiceAccount", pod.get("serviceAccountName", "default"), ns, None,
                     False))
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                refs.append(("v1", "ConfigMap", volume["configMap"]["name"], ns, None,
                             bool(volume["configMap"].get("optional"))))
            if "secret" in volume:
                refs.append(("v1", "Secret", volume["secret"]["secretName"], ns, None,
                             bool(volume["secret"].get("optional"))))
        for container in pod["containers"]:
            for env in container.get("env", []):
                for field, kind in (("configMapKeyRef", "ConfigMap"),
                                    ("secretKeyRef", "Secret")):
                    ref = env.get("valueFrom", {}).get(field)
                    if ref:
                        refs.append(("v1", kind, ref["name"], ns, ref["key"],
                                     bool(ref.get("optional"))))
            for source in container.get("envFrom", []):
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if field in source:
                        refs.append(("v1", kind, source[field]["name"], ns, None,
                                     bool(source[field].get("optional"))))
    if obj["kind"] == "RoleBinding":
        refs.append(("rbac.authorization.k8s.io/v1", obj["roleRef"]["kind"],
                     obj["roleRef"]["name"], ns, None, False))
        refs += [("v1", "ServiceAccount", s["name"], s.get("namespace", ns), None, False)
                 for s in obj["subjects"] if s["kind"] == "ServiceAccount"]
    if obj["kind"] == "Role":
        kinds = {"leases": ("coordination.k8s.io/v1", "Lease"), "configmaps": ("v1", "ConfigMap")}
        for rule in obj["rules"]:
            for resource in rule["resources"]:
                refs += [(*kinds[resource], name, ns, None, False)
                         for name in rule.get("resourceNames", [])]
    return refs


def assert_complete(cluster: Cluster, printed: str, notice: str) -> list[dict[str, Any]]:
    """Apply a printed set for real, read every object back, and check that every reference
    resolves to an object (and key) that exists, or is named in the notice on stderr."""
    objects = [d for d in yaml.safe_load_all(printed) if d]
    cluster.apply(objects)
    live = []
    for obj in objects:
        got = _get(cluster, obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                   obj["metadata"]["namespace"])
        assert got is not None, f"{obj['kind']}/{obj['metadata']['name']} was not created"
        live.append(got)
    assert_resolves(cluster, live, notice)
    return live


def in_namespace(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """The workloads and RBAC objects the API server holds in a namespace."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(cluster.api)
    found = []
    for api_version, kind in (("batch/v1", "CronJob"), ("apps/v1", "Deployment"),
                              ("rbac.authorization.k8s.io/v1", "Role"),
                              ("rbac.authorization.k8s.io/v1", "RoleBinding")):
        resource = dynamic.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(namespace=namespace).to_dict()["items"]:
            found.append({**item, "apiVersion": api_version, "kind": kind})
    return found


def assert_resolves(cluster: Cluster, live: list[dict[str, Any]], notice: str) -> None:
    notice = " ".join(notice.split())
    for obj in live:
        for api_version, kind, name, ns, key, optional in references(obj):
            target = _get(cluster, api_version, kind, name, ns)
            if target is None:
                assert f"{kind} {name}" in notice, \
                    f"{obj['kind']}/{obj['metadata']['name']} refers to {kind} {name} in " \
                    f"{ns}: neither printed nor named on stderr"
                if kind == "Secret":
                    assert optional, f"a pod would not start without Secret {name}"
            elif key is not None and kind == "ConfigMap":
                assert key in (target.get("data") or {}), (kind, name, key)


@pytest.mark.parametrize("command", [
    pytest.param(["manifests", "cronjob", "-c", "CFG"], id="cronjob"),
    pytest.param(["manifests", "loop", "-c", "CFG", "--interval", "60s"], id="loop"),
    pytest.param(["manifests", "cronjob", "--without-config", "-n", "NS"],
                 id="cronjob-without-config"),
    pytest.param(["manifests", "loop", "--without-config", "-n", "NS"],
                 id="loop-without-config"),
    pytest.param(["manifests", "hpa", "api", "-n", "NS"], id="hpa"),
])
def test_every_printed_set_is_complete_on_the_api_server(
        command: list[str], cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.namespace
    cfg = write_config(tmp_path / "c.yaml", ns, "http://prometheus:9090", [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    proc = run_cli([str(cfg) if a == "CFG" else ns if a == "NS" else a for a in command])
    assert proc.returncode == 0, proc.stderr
    live = assert_complete(cluster, proc.stdout, proc.stderr)
    assert {o["metadata"]["namespace"] for o in live} == {ns}
    if "--without-config" in command:
        assert "ConfigMap devscale-config" in proc.stderr
    workloads = [o for o in live if o["kind"] in ("CronJob", "Deployment")]
    for workload in workloads:      # the job scales the namespace that holds its RBAC
        pod = _pod_spec(workload)
        assert pod is not None
        assert pod["containers"][0]["args"][-2:] == ["--namespace", ns]


def test_a_cronjob_for_another_namespace_than_its_config_is_refused(
        cluster: Cluster, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", "devtrip", "http://prometheus:9090", [MEMORY],
                       [{"deployment": "api"}])
    proc = run_cli(["manifests", "cronjob", "-n", cluster.namespace, "-c", str(cfg)])
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"-n {cluster.namespace} but {cfg} scales namespace devtrip" in \
        " ".join(proc.stderr.split())


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
def cron_user(crontab_turn: None) -> str:
    """A throw-away user whose crontab the test may change (never the developer's own)."""
    if os.geteuid() != 0:   # a developer's own run may skip it; CI never may
        refuse = pytest.fail if os.environ.get("CI") else pytest.skip
        refuse("needs root for a throw-away user's crontab; CI runs as root")
    # One per checkout: test runs of other checkouts on this machine use their own crontab.
    name = f"devscale-cron-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
    subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
    return name


def two_contexts(admin_kubeconfig: Path, path: Path) -> Path:
    """The test bed's kubeconfig with a second context, `prod`, on a server that refuses
    connections: a check that follows the current context to it fails with exit 4."""
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    [cluster] = doc["clusters"]
    doc["clusters"].append({"name": "prod", "cluster": {
        "server": "https://127.0.0.1:1", "certificate-authority": cluster["cluster"][
            "certificate-authority"]}})
    doc["contexts"].append({"name": "prod", "context": {"cluster": "prod",
                                                        "user": doc["users"][0]["name"]}})
    path.write_text(yaml.safe_dump(doc))
    return path


def use_context(kubeconfig: Path, context: str) -> None:
    """`kubectl config use-context`, run by the real kubectl on the file."""
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "config", "use-context",
                    context], check=True, capture_output=True)


def entry_command(entry: str) -> str:
    """What cron runs of an entry: the line without the schedule and the tag."""
    return entry.split(" ", 5)[5].rsplit("  # ", 1)[0]


def test_cron_install_is_idempotent_and_the_entry_runs(
        cron_user: str, admin_kubeconfig: Path, tmp_path: Path) -> None:
    cfg = ROOT / "config" / "devtrip.yaml"
    log = tmp_path / "check.log"
    args = ["cron", "install", "-c", str(cfg), "--every", "2m", "--log", str(log),
            "--user", cron_user]
    env = {"KUBECONFIG": str(admin_kubeconfig)}
    first, second = run_cli(args, env), run_cli(args, env)
    assert first.returncode == 0 and first.stdout.startswith("installed"), first.stderr
    assert second.stdout.startswith("already installed")
    table = subprocess.run(["crontab", "-u", cron_user, "-l"], capture_output=True,
                           text=True, check=True).stdout
    [entry] = [line for line in table.splitlines() if "# devscale:" in line]
    assert entry.startswith("*/2 * * * * ") and "/flock -n /tmp/devscale-" in entry
    assert f"--config {cfg}" in entry and f">> {log} 2>&1" in entry
    assert f"--kubeconfig {admin_kubeconfig} --context testbed --namespace devtrip" in entry
    shown = run_cli(["cron", "show", "--user", cron_user]).stdout.strip().splitlines()
    assert shown == [entry, f"  target: context testbed of {admin_kubeconfig}, namespace "
                     "devtrip"]
    # What cron would run: flock holds a lock, devscale runs and writes to the log.
    subprocess.run(["sh", "-c", entry_command(entry)], check=False, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "devscale" in log.read_text()
    assert run_cli(["cron", "uninstall", "-c", str(cfg), "--user", cron_user]).stdout.strip() \
        == "removed 1 entry"
    assert run_cli(["cron", "show", "--user", cron_user]).stdout.strip() == \
        "no devscale entry in the crontab"


def test_cron_entry_keeps_its_target_when_the_current_context_changes(
        cron_user: str, cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    """Installed while `testbed` is current; then `kubectl config use-context prod`: the
    entry's command still scales the test bed's Deployment, where an unpinned check fails."""
    kubeconfig = two_contexts(admin_kubeconfig, tmp_path / "kubeconfig")
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    log = tmp_path / "check.log"
    installed = run_cli(["cron", "install", "-c", str(cfg), "--log", str(log),
                         "--user", cron_user], env={"KUBECONFIG": str(kubeconfig)})
    assert installed.returncode == 0, installed.stderr
    shown = json.loads(run_cli(["cron", "show", "--user", cron_user, "-o", "json"]).stdout)
    [described] = shown["entries"]
    assert shown["schemaVersion"] == 1
    assert {k: described[k] for k in ("schedule", "config", "kubeconfig", "context",
                                      "namespace", "log", "pinned")} == {
        "schedule": "*/2 * * * *", "config": str(cfg), "kubeconfig": str(kubeconfig),
        "context": "testbed", "namespace": cluster.namespace, "log": str(log), "pinned": True}

    use_context(kubeconfig, "prod")
    settle()
    unpinned = run_cli(["check", "-c", str(cfg)], env={"KUBECONFIG": str(kubeconfig)})
    assert unpinned.returncode == 4, unpinned.stderr          # prod: connection refused
    assert cluster.replicas("api") == 2
    # cron's environment: no $KUBECONFIG, another working directory
    subprocess.run(["sh", "-c", described["line"].split(" ", 5)[5].rsplit("  # ", 1)[0]],
                   check=False, timeout=60, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                        "PYTHONPATH": str(ROOT),
                        "DEVSCALE_STATE_DIR": str(tmp_path / "state")})
    assert cluster.replicas("api") == 5, log.read_text()


def test_cron_install_names_a_missing_kubeconfig_or_context(tmp_path: Path,
                                                            admin_kubeconfig: Path) -> None:
    cfg = str(ROOT / "config" / "devtrip.yaml")
    missing = run_cli(["cron", "install", "-c", cfg, "--kubeconfig", str(tmp_path / "nope")])
    assert missing.returncode == 2
    assert f"kubeconfig {tmp_path / 'nope'} (--kubeconfig): cannot read it" in missing.stderr
    unknown = run_cli(["cron", "install", "-c", cfg, "--context", "staging"],
                      env={"KUBECONFIG": str(admin_kubeconfig)})
    assert unknown.returncode == 2
    assert f"kubeconfig {admin_kubeconfig} has no context 'staging' (it has: testbed)" in \
        " ".join(unknown.stderr.split())


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
    env = {"PATH": f"{devscale_shim(tmp_path)}:/usr/bin:/bin", "DEVSCALE_CONFIG": str(cfg),
           "KUBECONFIG": str(admin_kubeconfig), "HOME": str(tmp_path)}
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True, timeout=120)
    assert (tmp_path / "devscale-status").read_text().split() == ["ok", "0"]
    assert json.loads((tmp_path / "devscale-check.json").read_text())["deployments"][0][
        "applied"] is True
    assert cluster.replicas("api") == 5


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    gateway = Pushgateway(tmp_path_factory.mktemp("pushgateway")).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def gateway_prometheus(pushgateway: Pushgateway, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Prometheus]:
    """A second Prometheus, with the shipped rules, scraping the Pushgateway (honor_labels,
    as Prometheus' documentation asks for a Pushgateway)."""
    prom = Prometheus(tmp_path_factory.mktemp("gateway-prometheus"), pushgateway.port).start()
    yield prom
    prom.stop()


def rule_expr(alert: str) -> str:
    return next(r["expr"] for g in m.prometheus_rules()["groups"] for r in g["rules"]
                if r.get("alert") == alert)


def test_a_check_pushes_and_the_alerts_fire(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        pushgateway: Pushgateway, gateway_prometheus: Prometheus, admin_kubeconfig: Path,
        tmp_path: Path) -> None:
    """`api` needs 5 replicas but may have 3 (capacity exhausted); `idle` has no readings
    (held). A real `check` pushes; the real Prometheus scrapes the Pushgateway, and the shipped
    alerts' own expressions select both Deployments, and both alerts are pending."""
    ns = cluster.namespace
    cluster.deployment("api", 2)
    cluster.deployment("idle", 2)
    exporter.set_load(ns, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY],
                       [{"deployment": "api"}, {"deployment": "idle"}], minReplicas=2,
                       maxReplicas=3)
    settle()
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig),
                    "--pushgateway", pushgateway.url, "-o", "json"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["warnings"] == []
    assert cluster.replicas("api") == 3
    pushed = pushgateway.metrics()
    assert f'devscale_capacity_exhausted{{deployment="api",instance="",job="devscale",' \
           f'namespace="{ns}"}} 1' in pushed
    assert "devscale_last_success_timestamp_seconds{" in pushed
    assert "devscale_decisions_total" not in pushed and "devscale_leader" not in pushed

    def selected(expr: str) -> set[str]:
        return {r["metric"]["deployment"] for r in gateway_prometheus.query(expr)
                if r["metric"].get("namespace") == ns}

    wait_until(lambda: selected(rule_expr("DevscaleCapacityExhausted")) == {"api"},
               "DevscaleCapacityExhausted's expression", timeout=30)
    wait_until(lambda: selected(rule_expr("DevscaleScalingHeld")) == {"idle"},
               "DevscaleScalingHeld's expression", timeout=30)
    wait_until(lambda: selected('ALERTS{alertname=~"DevscaleCapacityExhausted|'
                                'DevscaleScalingHeld", alertstate="pending"}') == {"api", "idle"},
               "both alerts pending", timeout=30)
    assert not [r for r in gateway_prometheus.query(rule_expr("DevscaleNotRunning"))
                if r["metric"].get("namespace") == ns]


def test_a_failed_run_keeps_the_last_success_time(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        pushgateway: Pushgateway, admin_kubeconfig: Path, tmp_path: Path) -> None:
    """A run with a metric error pushes its gauges but not a new success time, so
    `DevscaleNotRunning` measures from the last good run."""
    ns = cluster.namespace
    cluster.deployment("api", 2)
    exporter.set_load(ns, "api", pods=2, memory_percent=100)
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    args = ["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig)]
    with_user = pushgateway.url.replace("http://", "http://ops:pw@")    # basic auth, accepted
    first_run = run_cli([*args, "-o", "json"], {"DEVSCALE_PUSHGATEWAY": with_user})
    assert first_run.returncode == 0 and json.loads(first_run.stdout)["warnings"] == []

    def success_time() -> float:
        [line] = [x for x in pushgateway.metrics().splitlines()
                  if x.startswith("devscale_last_success_timestamp_seconds{")
                  and f'namespace="{ns}"' in x]
        return float(line.split()[-1])

    first = success_time()
    broken = write_config(tmp_path / "broken.yaml", ns, prometheus.url,
                          [{**MEMORY, "preset": None,
                            "query": "sum by (deployment) (no_such_series)"}],
                          [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    failed = run_cli(["check", "-c", str(broken), "--kubeconfig", str(admin_kubeconfig),
                      "--pushgateway", pushgateway.url])
    assert failed.returncode == 3, failed.stderr
    assert success_time() == first


def test_a_failed_push_is_a_warning_not_a_failure(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    ns = cluster.namespace
    cluster.deployment("api", 2)
    exporter.set_load(ns, "api", pods=2, memory_percent=200)
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    nobody = f"http://ops:s3cret@127.0.0.1:{free_port()}"
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(admin_kubeconfig),
                    "--pushgateway", nobody, "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    assert cluster.replicas("api") == 5
    [warning] = json.loads(proc.stdout)["warnings"]
    assert warning.startswith(f"metrics not pushed to the Pushgateway http://ops:***@127.0.0.1:"
                              f"{nobody.rsplit(':', 1)[1]}: ")
    assert "Connection refused" in warning
    assert "s3cret" not in proc.stdout + proc.stderr


# The README's Deploy section, run as written: each `sh` block by one test below (the
# blocks and the tests that run them are registered in tests/readme.py).
root_crontab = readme.root_crontab


def test_readme_cron_recipe(root_crontab: None, cluster: Cluster, admin_kubeconfig: Path,
                            tmp_path: Path) -> None:
    write_config(tmp_path / "devscale.yaml", cluster.namespace, "http://prometheus:9090",
                 [MEMORY], [{"deployment": "api"}])
    proc = run_recipe(recipe("cron"), tmp_path, admin_kubeconfig)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "installed:"
    assert out[2] == out[4] == (f"  target: context testbed of {admin_kubeconfig}, namespace "
                                f"{cluster.namespace}")
    assert out[3] == out[1]                                       # `cron show`: the entry
    assert out[5] == "removed 1 entry"
    assert "# devscale:" not in subprocess.run(["crontab", "-l"], capture_output=True,
                                               text=True, check=False).stdout


@pytest.fixture
def devtrip(kube: Any) -> Cluster:
    """The namespace the production overlay deploys to."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    if "devtrip" not in [n.metadata.name for n in core.list_namespace().items]:
        core.create_namespace({"metadata": {"name": "devtrip"}})
    return Cluster(kube, "devtrip")


def test_readme_kustomize_recipe(devtrip: Cluster, admin_kubeconfig: Path,
                                 tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "deploy", work / "deploy")
    proc = run_recipe(recipe("kustomize"), work, admin_kubeconfig)
    assert proc.returncode == 0, proc.stderr
    live = in_namespace(devtrip, "devtrip")
    assert {o["kind"] for o in live} == {"CronJob", "Role", "RoleBinding"}
    assert_resolves(devtrip, live, notice="")       # the Secret too: the recipe made it
    [job] = [o for o in live if o["kind"] == "CronJob"]
    pod = _pod_spec(job)
    assert pod is not None
    [config_map] = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
    mounted = _get(devtrip, "v1", "ConfigMap", config_map, "devtrip")
    assert mounted is not None
    assert yaml.safe_load(mounted["data"]["devscale.yaml"])["namespace"] == "devtrip"


def test_overlays_deploy_where_their_config_scales() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "base" / "devscale.yaml").read_text())
    for overlay in (ROOT / "deploy" / "overlays").glob("*/kustomization.yaml"):
        assert yaml.safe_load(overlay.read_text())["namespace"] == config["namespace"], overlay


@pytest.mark.parametrize("key", ["cronjob", "loop"])
def test_readme_manifests_recipes(key: str, cluster: Cluster, admin_kubeconfig: Path,
                                  tmp_path: Path) -> None:
    write_config(tmp_path / "devscale.yaml", cluster.namespace, "http://prometheus:9090",
                 [MEMORY], [{"deployment": "api"}])
    proc = run_recipe(recipe(key), tmp_path, admin_kubeconfig)
    assert proc.returncode == 0, proc.stderr
    live = in_namespace(cluster, cluster.namespace)
    assert {o["kind"] for o in live} == {"CronJob" if key == "cronjob" else "Deployment",
                                         "Role", "RoleBinding"}
    assert_resolves(cluster, live, proc.stderr)   # the Secret is named on stderr
    assert "Secret devscale-secrets is not printed" in proc.stderr


def test_readme_rules_recipe(admin_kubeconfig: Path, tmp_path: Path) -> None:
    proc = run_recipe(recipe("rules"), tmp_path, admin_kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((tmp_path / "devscale-rules.yaml").read_text()) == \
        yaml.safe_load((ROOT / "deploy" / "prometheus" / "devscale-rules.yaml").read_text())
    operator = yaml.safe_load((tmp_path / "devscale-prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    (tmp_path / "from-operator.yaml").write_text(yaml.safe_dump(operator["spec"]))
    for name in ("devscale-rules.yaml", "from-operator.yaml"):
        checked = subprocess.run(["promtool", "check", "rules", name], cwd=tmp_path,
                                 capture_output=True, text=True)
        assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stderr
    assert json.loads((tmp_path / "devscale-dashboard.json").read_text())["uid"] == "devscale"
