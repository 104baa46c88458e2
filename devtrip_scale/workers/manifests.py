"""`devscale manifests workers`: the worker controller as a Deployment, its config as a
ConfigMap, RBAC for exactly the verbs it uses, a PodDisruptionBudget, and — with
api.plaintext_listen — a NetworkPolicy that admits only the CI server's pods to the plaintext
port (pure data).

Two replicas by default, spread over nodes (preferred pod anti-affinity) and never both taken
down at once by a drain (PodDisruptionBudget minAvailable 1); a rolling update starts the new
replica before it stops an old one (maxUnavailable 0), and a replica's SIGTERM hands its builds
over to the others, so a rollout or a drain cancels no build."""

from __future__ import annotations

from typing import Any

from devtrip_scale import IMAGE
from devtrip_scale.workers.config import ApiModel

APP = "devscale-workers"
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "devscale"}
CONFIG_MOUNT = "/etc/devscale"

# Every call the server makes (kube/aio.py): create, delete, list and watch pods; read a
# finished pod's log; create Events. Nothing else.
RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def network_policy(namespace: str, api: ApiModel) -> dict[str, Any]:
    """Ingress to the workers' pods: the plaintext port (ottoscaler.v1 without TLS) only from
    the CI server's pods (api.plaintext_clients, in api.plaintext_clients_namespace or this
    one); the TLS API and /healthz, /metrics from anywhere, as without the policy."""
    assert api.plaintext_listen is not None
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(api.plaintext_clients)}}
    if api.plaintext_clients_namespace:
        peer["namespaceSelector"] = {"matchLabels": {
            "kubernetes.io/metadata.name": api.plaintext_clients_namespace}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(f"{APP}-ottoscaler-plaintext", namespace),
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                     "policyTypes": ["Ingress"],
                     "ingress": [
                         {"from": [peer], "ports": [{"protocol": "TCP",
                                                     "port": _port(api.plaintext_listen)}]},
                         {"ports": [{"protocol": "TCP", "port": 8080},
                                    {"protocol": "TCP", "port": _port(api.listen)}]}]}}


def objects(namespace: str, config_text: str, image: str = IMAGE, replicas: int = 2,
            secret: str = "devscale-workers-secrets", api: ApiModel | None = None
            ) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, ConfigMap, Deployment and PodDisruptionBudget, in
    that order; then the NetworkPolicy when `api` has a plaintext_listen."""
    env = [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key,
                                                         "optional": True}}}
           for name, key in (("SLACK_WEBHOOK", "slack-webhook"),
                             ("SMTP_PASSWORD", "smtp-password"),
                             ("REDIS_PASSWORD", "redis-password"))]
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    container = {
        "name": "workers", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["workers", "serve", "--config", f"{CONFIG_MOUNT}/workers.yaml",
                 "--listen", "0.0.0.0:8080", "--consumer", "$(POD_NAME)"],
        "env": env,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                         {"name": "logs", "mountPath": "/var/lib/devscale"}],
    }
    selector = {"app.kubernetes.io/name": APP}
    pod = {"serviceAccountName": APP, "terminationGracePeriodSeconds": 30,
           "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                               "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
           "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
               {"weight": 100, "podAffinityTerm": {
                   "labelSelector": {"matchLabels": selector},
                   "topologyKey": "kubernetes.io/hostname"}}]}},
           "containers": [container],
           "volumes": [{"name": "config", "configMap": {"name": APP}},
                       {"name": "logs", "emptyDir": {}}]}
    policy = [network_policy(namespace, api)] if api is not None and api.plaintext_listen \
        else []
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP, namespace)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(APP, namespace), "rules": RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(APP, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP},
         "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(APP, namespace),
         "data": {"workers.yaml": config_text}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(APP, namespace),
         "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": {"metadata": {"labels": {**selector, **LABELS}, "annotations": {
                      "prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
                               "spec": pod}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": _meta(APP, namespace),
         "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}}},
        *policy,
    ]
