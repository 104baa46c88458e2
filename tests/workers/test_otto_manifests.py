"""`devscale manifests workers` with api.plaintext_listen (a separate process): it adds a
NetworkPolicy that admits only the CI server's pods (in their namespace, when given) to the
plaintext port and keeps the TLS API and /healthz, /metrics open as before; the real API server
accepts it. Without plaintext_listen there is no policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster, run_cli
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration


def _tls(tmp_path: Path) -> dict[str, str]:
    for name in ("server.pem", "server.key"):
        (tmp_path / name).write_text("unused by manifests\n")
    return {"cert_file": str(tmp_path / "server.pem"), "key_file": str(tmp_path / "server.key")}


def test_the_plaintext_port_is_admitted_from_the_ci_servers_pods_only(
        workers: Workers, cluster: Cluster, tmp_path: Path) -> None:
    config = workers.configure(api={
        "enabled": True, "tls": _tls(tmp_path), "listen": "0.0.0.0:50051",
        "plaintext_listen": "0.0.0.0:50052", "plaintext_allow_remote": True,
        "plaintext_clients": {"app": "otto-handler", "tier": "ci"},
        "plaintext_clients_namespace": "ci"})
    r = run_cli(["manifests", "workers", "-c", str(config), "--replicas", "1"])
    assert r.returncode == 0, r.stderr
    objects = list(yaml.safe_load_all(r.stdout))
    assert [o["kind"] for o in objects][-1] == "NetworkPolicy"
    policy = objects[-1]
    assert policy["spec"]["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": "devscale-workers"}}
    plain, rest = policy["spec"]["ingress"]
    assert plain == {"from": [{"podSelector": {"matchLabels": {"app": "otto-handler",
                                                                "tier": "ci"}},
                               "namespaceSelector": {"matchLabels": {
                                   "kubernetes.io/metadata.name": "ci"}}}],
                     "ports": [{"protocol": "TCP", "port": 50052}]}
    assert "from" not in rest and {p["port"] for p in rest["ports"]} == {8080, 50051}
    from kubernetes import client

    client.NetworkingV1Api(cluster.api).create_namespaced_network_policy(cluster.namespace,
                                                                        policy)


def test_no_policy_without_a_plaintext_listener(workers: Workers) -> None:
    r = run_cli(["manifests", "workers", "-c", str(workers.configure())])
    assert r.returncode == 0, r.stderr
    assert "NetworkPolicy" not in [o["kind"] for o in yaml.safe_load_all(r.stdout)]
