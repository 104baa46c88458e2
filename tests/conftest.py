"""Shared fixtures: a fixed clock, and the real test bed on loopback: Prometheus, Redis and a
Kubernetes cluster (kube-apiserver, controller-manager, scheduler, KWOK nodes).

The servers start once per session, on first use, so the unit tier (`-m "not integration"`)
needs none of them.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import kwok
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.net import wait_until
from testbed.prometheus import Prometheus
from testbed.redis import Redis

ROOT = Path(__file__).resolve().parent.parent
# A test suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored, and so would every process it starts: the tests that press Ctrl-C on a real
# `devscale` (or a sandbox) would wait for ever. Ctrl-C means what it means at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
# Rate window the tests use: short, so a new series reads right after a few scrapes.
TEST_WINDOW = "5s"
SETTLE_SECONDS = 7.0


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def crontab_turn() -> Iterator[None]:
    """Tests that change a crontab (root's, the throw-away cron user's) share a machine-wide
    resource: they take turns through a lock file, whichever pytest-xdist worker runs them.
    Everything else shares nothing: each worker starts its own test bed, each test its
    namespace."""
    with open("/tmp/devscale-tests-crontab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(autouse=True)
def no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers export COLUMNS=80 and LINES=24; devscale reads COLUMNS to fold
    its tables, so every test sees the environment of a plain run (and of cron and CI)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own run memory, for `check` in this process and in the ones it starts."""
    path = tmp_path / "devscale-state"
    monkeypatch.setenv("DEVSCALE_STATE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def exporter() -> Iterator[SyntheticExporter]:
    ex = SyntheticExporter()
    yield ex
    ex.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: SyntheticExporter, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), exporter.port).start()
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane")).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_kubeconfig(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return controlplane.kubeconfig(tmp_path_factory.mktemp("kube") / "admin.yaml")


@pytest.fixture(scope="session")
def kube(admin_kubeconfig: Path) -> Iterator[Any]:
    from devtrip_scale.kube import connect

    api = connect(str(admin_kubeconfig))
    yield api
    api.close()


@dataclass
class Cluster:
    """Test-side helpers on the real API server, as the admin."""

    api: Any
    namespace: str
    logs_dir: Path | None = None

    def deployment(self, name: str, replicas: int, labels: dict[str, str] | None = None,
                   annotations: dict[str, str] | None = None, cpu: str | None = None,
                   ready: bool = True) -> None:
        """A Deployment of `replicas` pods; `cpu` is each pod's CPU request (none by default).

        With `ready`, it returns once all the pods are Ready, as a Deployment that has run for a
        while would be: the HPA's arithmetic multiplies the ready pods."""
        from kubernetes import client

        labels = {"app": name, **(labels or {})}
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels={"app": name}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": name}),
                    spec=client.V1PodSpec(containers=[client.V1Container(
                        name="app", image="registry.invalid/app:1",
                        resources=client.V1ResourceRequirements(requests={"cpu": cpu})
                        if cpu else None)]),
                ),
            ),
        )
        client.AppsV1Api(self.api).create_namespaced_deployment(self.namespace, body)
        if ready:
            self.wait_ready(name, replicas)

    def wait_ready(self, name: str, replicas: int, timeout: float = 60) -> float:
        """Wait until Deployment `name` has exactly `replicas` Ready pods; the seconds it took."""
        from kubernetes import client

        apps = client.AppsV1Api(self.api)

        def ready() -> bool:
            status = apps.read_namespaced_deployment_status(name, self.namespace).status
            return (status.ready_replicas or 0) == replicas and (status.replicas or 0) == replicas

        return wait_until(ready, f"deployment {self.namespace}/{name}: {replicas} ready",
                          timeout=timeout)

    def pod(self, name: str, run_seconds: float | None = None, exit_code: int | None = None
            ) -> None:
        """A bare pod (restartPolicy Never) that runs `run_seconds` on a KWOK node, then ends
        Succeeded, or Failed with `exit_code` when that is not 0."""
        from kubernetes import client

        client.CoreV1Api(self.api).create_namespaced_pod(self.namespace, {
            "metadata": {"name": name, "annotations": _run_annotations(run_seconds, exit_code)},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "app", "image": "registry.invalid/app:1"}]}})

    def job(self, name: str, run_seconds: float | None = None, exit_code: int | None = None,
            completions: int = 1) -> None:
        """A Job whose pods each run `run_seconds` and end with `exit_code` (0 by default)."""
        from kubernetes import client

        client.BatchV1Api(self.api).create_namespaced_job(self.namespace, {
            "metadata": {"name": name},
            "spec": {"completions": completions, "backoffLimit": 0, "template": {
                "metadata": {"annotations": _run_annotations(run_seconds, exit_code)},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "app", "image": "registry.invalid/app:1"}]}}}})

    def pod_log(self, pod: str, lines: list[str], container: str = "app") -> Path:
        """Append `lines` to the log of `container` in `pod`, as `pods/log` serves it."""
        from kubernetes import client

        assert self.logs_dir is not None, "pod logs need the cluster fixture's KWOK"
        path = self.logs_dir / self.namespace / pod / f"{container}.log"
        if not path.exists():
            kwok.write_log(path, [])
            client.CustomObjectsApi(self.api).create_namespaced_custom_object(
                kwok.GROUP, "v1alpha1", self.namespace, "logs",
                kwok.logs_object(self.namespace, pod, container, path))
            # KWOK serves the file once it has seen the Logs object: until then, 400 "no logs"
            core = client.CoreV1Api(self.api)
            wait_until(lambda: core.read_namespaced_pod_log(pod, self.namespace,
                                                            container=container) is not None,
                       f"KWOK serves the log of {self.namespace}/{pod}", timeout=30)
        kwok.write_log(path, lines)
        return path

    def grant(self, rules: list[dict[str, Any]], account: str = "devscale",
              role: str = "w") -> None:
        """A ServiceAccount bound to a Role of exactly `rules` in this namespace (change them
        later with `patch_namespaced_role(role, …)`)."""
        from kubernetes import client

        ns = self.namespace
        client.CoreV1Api(self.api).create_namespaced_service_account(
            ns, {"metadata": {"name": account}})
        rbac = client.RbacAuthorizationV1Api(self.api)
        rbac.create_namespaced_role(ns, {"metadata": {"name": role}, "rules": rules})
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                    "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]})

    def replicas(self, name: str) -> int:
        from kubernetes import client

        scale = client.AppsV1Api(self.api).read_namespaced_deployment_scale(name, self.namespace)
        return int(scale.spec.replicas or 0)   # the API leaves out a 0

    def set_replicas(self, name: str, replicas: int) -> None:
        from kubernetes import client

        client.AppsV1Api(self.api).patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": replicas}})

    def apply(self, objects: list[dict[str, Any]], *, dry_run: bool = False) -> None:
        """Server-side apply into this namespace, as `kubectl apply --server-side` would."""
        from kubernetes.dynamic import DynamicClient

        dynamic = DynamicClient(self.api)
        for obj in objects:
            resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            dynamic.server_side_apply(resource, body=obj, namespace=self.namespace,
                                      field_manager="devscale-tests", force_conflicts=True,
                                      **({"dry_run": "All"} if dry_run else {}))


def service_account_kubeconfig(cluster: Cluster, controlplane: ControlPlane, path: Path,
                               account: str = "devscale") -> Path:
    """A kubeconfig that authenticates as a ServiceAccount, with a token the API server mints."""
    from kubernetes import client

    token = client.CoreV1Api(cluster.api).create_namespaced_service_account_token(
        account, cluster.namespace, {"spec": {"expirationSeconds": 600}}).status.token
    return controlplane.kubeconfig(path, user=account, token=token)


def _run_annotations(run_seconds: float | None, exit_code: int | None) -> dict[str, str]:
    """The annotations the test bed's KWOK stages end a pod by (testbed/kwok/stages.yaml)."""
    return {kwok.RUN_SECONDS: f"{run_seconds or 0:g}",
            **({kwok.EXIT_CODE: str(exit_code)} if exit_code is not None else {})}


@pytest.fixture
def cluster(kube: Any, controlplane: ControlPlane) -> Iterator[Cluster]:
    """A fresh namespace on the real API server, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"created-by": "devscale-tests"})))
    yield Cluster(kube, name, controlplane.logs_dir)
    core.delete_namespace(name)


def write_config(path: Path, namespace: str, prometheus_url: str, metrics: list[dict[str, Any]],
                 targets: list[dict[str, Any]], **scaling: Any) -> Path:
    doc = {
        "namespace": namespace,
        "prometheus": {"url": prometheus_url, "timeout_seconds": 5},
        "targets": targets,
        "scaling": scaling,
        "metrics": metrics,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(args: list[str], env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`devscale ARGS` as a separate process, as cron would run it."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("NAMESPACE", "METRICS_SERVER", "DEBUG")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "devtrip_scale", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT)


def settle() -> None:
    """Let Prometheus scrape new series for a full test rate window."""
    time.sleep(SETTLE_SECONDS)
