"""`devscale run` against the real API server and Prometheus: two processes, one leads and
scales, the other stays ready; kill the leader and the other takes over within the lease
duration; /healthz and /metrics; SIGTERM frees the Lease; a leader whose passes fail tells it
once, and that it is resolved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devtrip_scale.scaling import manifests as m
from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.net import free_port, wait_until
from testbed.prometheus import Prometheus
from testbed.receivers import SlackReceiver
from tests.conftest import ROOT, Cluster, service_account_kubeconfig, settle, write_config

pytestmark = pytest.mark.integration

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


def start(cfg: Path, kubeconfig: Path, port: int, env: dict[str, str] | None = None
          ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devtrip_scale", "run", "-c", str(cfg), "--kubeconfig",
         str(kubeconfig), "--interval", "1s", "--lease-duration", "4s",
         "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` holds; meanwhile the endpoints may refuse connections."""
    return wait_until(check, "the condition", timeout, ignore=(httpx.HTTPError,))


def metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text


def leader(port: int) -> bool:
    return "devscale_leader 1.0" in metrics(port)


@pytest.fixture
def two_runs(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
             admin_kubeconfig: Path, tmp_path: Path
             ) -> Iterator[tuple[list[subprocess.Popen[str]], list[int]]]:
    cluster.deployment("api", 2)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    ports = [free_port(), free_port()]
    procs = [start(cfg, admin_kubeconfig, port) for port in ports]
    yield procs, ports
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=20)


def test_one_leads_the_other_takes_over_when_it_dies(
        cluster: Cluster, two_runs: tuple[list[subprocess.Popen[str]], list[int]]) -> None:
    procs, ports = two_runs
    until(lambda: all(httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2).status_code == 200
                      for p in ports), 30)
    # the leader scaled: 2 → 5, and on to 6 once the new pods are Ready (the synthetic load
    # stays at 200 % whatever the pods), possibly before the slower of the two answers /healthz
    until(lambda: cluster.replicas("api") >= 5, 30)
    first = 0 if leader(ports[0]) else 1
    other = 1 - first
    assert leader(ports[first]) and not leader(ports[other])
    assert "follower" in httpx.get(f"http://127.0.0.1:{ports[other]}/healthz").text
    text = metrics(ports[first])
    assert 'devscale_desired_replicas{deployment="api",namespace="' in text
    assert 'devscale_metric_reading{deployment="api",metric="memory"' in text
    assert "devscale_last_success_timestamp_seconds" in text
    procs[first].kill()                                       # no chance to release the Lease
    took = until(lambda: leader(ports[other]), 20)
    assert took < 4 + 5 + 2                                   # lease + skew margin + a tick


def test_sigterm_stops_gracefully_and_frees_the_lease(
        cluster: Cluster, two_runs: tuple[list[subprocess.Popen[str]], list[int]]) -> None:
    from kubernetes import client

    procs, ports = two_runs
    until(lambda: leader(ports[0]) or leader(ports[1]), 30)
    first = 0 if leader(ports[0]) else 1
    procs[first].send_signal(signal.SIGTERM)
    procs[first].communicate(timeout=20)
    assert procs[first].returncode == 0
    took = until(lambda: leader(ports[1 - first]), 10)
    assert took < 3                                           # no waiting for expiry
    holder = client.CoordinationV1Api(cluster.api).read_namespaced_lease(
        "devscale-lock", cluster.namespace).spec.holder_identity
    assert holder is not None


def test_a_leader_whose_passes_fail_tells_it_once_and_then_resolved(
        cluster: Cluster, controlplane: ControlPlane, exporter: SyntheticExporter,
        prometheus: Prometheus, tmp_path: Path) -> None:
    """Someone takes `list deployments` out of the Role: every pass fails until it is back."""
    ns = cluster.namespace
    role = next(o for o in m.rbac(ns) if o["kind"] == "Role")
    narrowed = {**role, "rules": [{**r, "verbs": ["get"]} if r["resources"] == ["deployments"]
                                  else r for r in role["rules"]]}
    cluster.apply([*m.rbac(ns), narrowed, *m.state(ns)])
    cluster.deployment("api", 2)
    exporter.set_load(ns, "api", pods=2, memory_percent=200)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    cfg = write_config(tmp_path / "c.yaml", ns, prometheus.url, [MEMORY],
                       [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    slack = SlackReceiver()
    proc = start(cfg, kubeconfig, free_port(), env={"SLACK_WEBHOOK": slack.url})
    try:
        until(lambda: len(slack.requests) == 1, 30)
        time.sleep(3)                                     # three more failing passes: quiet
        assert len(slack.requests) == 1
        [first] = [r["body"]["text"] for r in slack.requests]
        assert "devscale could not use the Kubernetes API" in first
        cluster.apply([role])                             # the Role is mended
        until(lambda: cluster.replicas("api") == 5, 30)
        until(lambda: len(slack.requests) == 2, 10)
        second = slack.requests[1]["body"]["text"]
        assert "resolved: devscale could not use the Kubernetes API" in second
        assert "api scaled up: 2 → 5" in second
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        slack.stop()
    assert "forbidden: cannot list deployments" in " ".join(err.split())
