"""Deployable manifests as data: the CronJob with its least-privilege RBAC, and plain HPAs.

A printed set is complete: every ServiceAccount, ConfigMap and Lease its objects refer to is in
it; what it cannot hold (the Secret with the credentials, or the config ConfigMap of a set printed
with `--without-config`) is named by `not_emitted()` for a notice on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from devtrip_scale import IMAGE
from devtrip_scale.kube.lease import LEASE_NAME
from devtrip_scale.scaling.models import HPA_DEFAULT_SCALE_DOWN, HPA_DEFAULT_SCALE_UP, ScalingRules
from devtrip_scale.scaling.pushgateway import PUSHGATEWAY_ENV

if TYPE_CHECKING:
    from devtrip_scale.scaling.config import Settings

APP = "devscale"
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/managed-by": "kustomize"}
CONFIG_MOUNT = "/etc/devscale"
CONFIG_MAP = "devscale-config"
CONFIG_KEY = "devscale.yaml"
HISTORY = "devscale-history"
SECRET = "devscale-secrets"
# Environment variable -> key of the Secret, for the shipped defaults of the config.
DEFAULT_SECRET_ENV = (("SLACK_WEBHOOK", "slack-webhook"), ("SMTP_PASSWORD", "smtp-password"),
                      ("EMAIL_RECIPIENTS", "email-recipients"))

# Exactly the verbs devscale uses; the Lease and the history ConfigMap ship with the manifests,
# so nothing needs `create`, and both are named.
RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},   # Pending: unschedulable?
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [HISTORY],
     "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def rules(history: str = HISTORY) -> list[dict[str, Any]]:
    """The Role's rules; `history` is the config's `history_configmap`."""
    return [{**rule, "resourceNames": [history]} if rule["resources"] == ["configmaps"] else rule
            for rule in RULES]


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def rbac(namespace: str, history: str = HISTORY) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP, namespace),
         "automountServiceAccountToken": True},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(APP, namespace), "rules": rules(history)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(APP, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP},
         "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": namespace}]},
    ]


FLEET_READ = f"{APP}-fleet-read"
FLEET_WRITE = f"{APP}-fleet-write"


def fleet_rules(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fleet's two ClusterRoles' rules: what the pass reads across the cluster (one list
    each), and what it writes in each namespace it scales."""
    read: list[dict[str, Any]] = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
         "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},  # Pending: unschedulable?
        # every namespace's history in one list by metadata.name: only the ConfigMaps so named
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": [settings.history_configmap], "verbs": ["list"]},
    ]
    route = settings.fleet.notify_route
    if settings.namespace_selector is not None or (route is not None and route.label):
        read.append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]})
    history = settings.history_configmap
    write: list[dict[str, Any]] = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},  # on a conflict
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [history],
         "verbs": ["get", "patch"]},
        # create: the pass's Events; list: `devscale status` reads them back (the last why)
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
    ]
    if settings.namespaces is None:   # namespaces not known up front: the pass creates each
        write.append({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]})
    return read, write


def fleet_rbac(settings: Settings) -> list[dict[str, Any]]:
    """The smallest RBAC of a fleet pass.

    Reads are cluster-wide (one list of Deployments, HPAs and Pending pods for the whole pass)
    through the ClusterRole devscale-fleet-read. Writes go through devscale-fleet-write: with a
    `namespaces:` list it is bound by a RoleBinding in each listed namespace only (and the
    history ConfigMaps ship with the manifests, so nothing needs `create`); with a selector or
    all namespaces, by a ClusterRoleBinding. The Lease and the run's notification state live in
    the config's `namespace`, under a Role of their own there.
    """
    home, history = settings.namespace, settings.history_configmap
    read, write = fleet_rules(settings)
    account = [{"kind": "ServiceAccount", "name": APP, "namespace": home}]
    rbac_v1 = "rbac.authorization.k8s.io/v1"

    def cluster_role(name: str, rules_: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": rbac_v1, "kind": "ClusterRole",
                "metadata": {"name": name, "labels": dict(LABELS)}, "rules": rules_}

    def role_ref(kind: str, name: str) -> dict[str, Any]:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}

    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP, home),
         "automountServiceAccountToken": True},
        cluster_role(FLEET_READ, read),
        {"apiVersion": rbac_v1, "kind": "ClusterRoleBinding",
         "metadata": {"name": FLEET_READ, "labels": dict(LABELS)},
         "roleRef": role_ref("ClusterRole", FLEET_READ), "subjects": account},
        cluster_role(FLEET_WRITE, write),
    ]
    if settings.namespaces is not None:
        objects += [{"apiVersion": rbac_v1, "kind": "RoleBinding",
                     "metadata": _meta(FLEET_WRITE, ns),
                     "roleRef": role_ref("ClusterRole", FLEET_WRITE), "subjects": account}
                    for ns in settings.namespaces]
    else:
        objects.append({"apiVersion": rbac_v1, "kind": "ClusterRoleBinding",
                        "metadata": {"name": FLEET_WRITE, "labels": dict(LABELS)},
                        "roleRef": role_ref("ClusterRole", FLEET_WRITE), "subjects": account})
    objects += [
        {"apiVersion": rbac_v1, "kind": "Role", "metadata": _meta(APP, home), "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [history],
             "verbs": ["get", "patch"]}]},
        {"apiVersion": rbac_v1, "kind": "RoleBinding", "metadata": _meta(APP, home),
         "roleRef": role_ref("Role", APP), "subjects": account},
    ]
    return objects


def fleet_state(settings: Settings) -> list[dict[str, Any]]:
    """The Lease and the run's history ConfigMap in the config's namespace, and the history
    ConfigMap of each listed namespace, shipped empty up front."""
    history = settings.history_configmap
    objects = state(settings.namespace, history)
    for ns in settings.namespaces or ():
        if ns != settings.namespace:
            objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": _meta(history, ns), "data": {}})
    return objects


def state(namespace: str, history: str = HISTORY) -> list[dict[str, Any]]:
    """The Lease and the history ConfigMap, shipped empty up front."""
    return [
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": _meta(LEASE_NAME, namespace), "spec": {}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(history, namespace),
         "data": {}},
    ]


def config_map(namespace: str, config_text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(CONFIG_MAP, namespace),
            "data": {CONFIG_KEY: config_text}}


def secret_env(settings: Settings) -> tuple[tuple[str, str], ...]:
    """(environment variable, Secret key) of every credential the config reads from its
    environment: the Slack webhook, the SMTP password, the recipients, the Prometheus token."""
    pairs = [(settings.notify.slack.webhook_env, "slack-webhook")]
    email = settings.notify.email
    if email is not None and email.password_env:
        pairs.append((email.password_env, "smtp-password"))
    pairs.append(("EMAIL_RECIPIENTS", "email-recipients"))
    if settings.prometheus.bearer_token_env:
        pairs.append((settings.prometheus.bearer_token_env, "prometheus-token"))
    return tuple(pairs)


def _secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {
        "name": SECRET, "key": key, "optional": True}}}


def not_emitted(namespace: str, secret_env: tuple[tuple[str, str], ...],
                config: bool = True) -> list[str]:
    """What the printed objects refer to but do not contain, each with how to create it."""
    notes = []
    if not config:
        notes.append(f"ConfigMap {CONFIG_MAP} (key {CONFIG_KEY}) is not printed and must exist "
                     f"before the pods start: kubectl -n {namespace} create configmap "
                     f"{CONFIG_MAP} --from-file={CONFIG_KEY}=YOUR-CONFIG.yaml")
    keys = " ".join(f"--from-literal={key}=…" for _, key in secret_env)
    envs = ", ".join(f"{key} → ${env}" for env, key in secret_env)
    notes.append(f"Secret {SECRET} is not printed (credentials never are); the pods read it "
                 f"optionally ({envs}): until it exists those stay unset (no notifications): "
                 f"kubectl -n {namespace} create secret generic {SECRET} {keys}")
    return notes


def cronjob(namespace: str, image: str = IMAGE, schedule: str = "*/2 * * * *", *,
            pin_namespace: bool = False,
            secret_env: tuple[tuple[str, str], ...] = DEFAULT_SECRET_ENV,
            pushgateway: str | None = None) -> dict[str, Any]:
    """The CronJob; `pin_namespace` adds `--namespace`, so the job scales the namespace that
    holds its RBAC whatever the mounted config says later."""
    args = ["check", "--config", f"{CONFIG_MOUNT}/{CONFIG_KEY}", "--output", "json"]
    if pin_namespace:
        args += ["--namespace", namespace]
    env = [_secret_env(name, key) for name, key in secret_env]
    if pushgateway:
        env.append({"name": PUSHGATEWAY_ENV, "value": pushgateway})
    container = {
        "name": APP, "image": image, "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "serviceAccountName": APP, "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": CONFIG_MAP}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(APP, namespace),
        "spec": {
            "schedule": schedule, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 60,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 110,
                                     "template": {"metadata": {"labels": dict(LABELS)},
                                                  "spec": pod}}},
        },
    }


def loop_deployment(namespace: str, image: str = IMAGE, interval: str = "60s", *,
                    pin_namespace: bool = False,
                    secret_env: tuple[tuple[str, str], ...] = DEFAULT_SECRET_ENV
                    ) -> dict[str, Any]:
    """`devscale run` as a Deployment of two: one leads through the Lease, one stands by."""
    job = cronjob(namespace, image, secret_env=secret_env)
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    container["args"] = ["run", "--config", f"{CONFIG_MOUNT}/{CONFIG_KEY}",
                         "--interval", interval, "--listen", "0.0.0.0:8080",
                         *(["--namespace", namespace] if pin_namespace else [])]
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20}
    container["livenessProbe"] = {**probe, "failureThreshold": 3}
    container["readinessProbe"] = probe
    pod["restartPolicy"] = "Always"
    selector = {"app.kubernetes.io/name": "devscale-run"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("devscale-run", namespace),
        "spec": {"replicas": 2, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": selector, "annotations": {
                     "prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
                              "spec": pod}},
    }


def hpa(deployment: str, namespace: str, *, min_replicas: int = 2, max_replicas: int = 10,
        cpu: int = 70, memory: int = 80) -> dict[str, Any]:
    """A plain autoscaling/v2 HPA on CPU and memory, the HPA's default behaviour made explicit."""
    def resource(name: str, value: int) -> dict[str, Any]:
        return {"type": "Resource", "resource": {
            "name": name, "target": {"type": "Utilization", "averageUtilization": value}}}

    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": deployment, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [resource("cpu", cpu), resource("memory", memory)],
            "behavior": {"scaleUp": _behavior(HPA_DEFAULT_SCALE_UP),
                         "scaleDown": _behavior(HPA_DEFAULT_SCALE_DOWN)},
        },
    }


def _behavior(rules: ScalingRules) -> dict[str, Any]:
    """An HPA `scaleUp`/`scaleDown` block from the rules devscale itself applies."""
    return {"stabilizationWindowSeconds": rules.stabilization_window_seconds,
            "selectPolicy": rules.select_policy,
            "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                         for p in rules.policies]}


_POD_TO_DEPLOYMENT = '"deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]{5}"'


def prometheus_rules() -> dict[str, Any]:
    """Recording rules the example configs use, and alerts on devscale itself."""
    return {"groups": [
        {"name": "devtrip.rules", "rules": [
            {"record": "devtrip:active_users_total",
             "expr": f"sum by (namespace, deployment) (label_replace(devtrip_active_users, "
                     f"{_POD_TO_DEPLOYMENT}))"},
            {"record": "devtrip:http_requests_per_second",
             "expr": f"sum by (namespace, deployment) (label_replace("
                     f"rate(http_requests_total[2m]), {_POD_TO_DEPLOYMENT}))"},
            {"record": "devtrip:http_p95_latency_seconds",
             "expr": f"histogram_quantile(0.95, sum by (namespace, deployment, le) ("
                     f"label_replace(rate(http_request_duration_seconds_bucket[2m]), "
                     f"{_POD_TO_DEPLOYMENT})))"},
        ]},
        {"name": "devscale.alerts", "rules": [
            {"alert": "DevscaleNotRunning",
             "expr": '(time() - max by (namespace) (kube_cronjob_status_last_successful_time'
                     '{cronjob="devscale"})) > 600 or (time() - max by (namespace) '
                     '(devscale_last_success_timestamp_seconds)) > 600',
             "for": "5m", "labels": {"severity": "critical"},
             "annotations": {"summary": "devscale has not completed a check in {{ $labels."
                             "namespace }} for over 10 minutes: nothing is being scaled"}},
            {"alert": "DevscaleCapacityExhausted",
             "expr": "max by (namespace, deployment) (devscale_capacity_exhausted) == 1",
             "for": "10m", "labels": {"severity": "critical"},
             "annotations": {"summary": "{{ $labels.deployment }} needs more replicas than its "
                             "maxReplicas: raise it or add capacity"}},
            {"alert": "DevscaleScalingHeld",
             "expr": "max by (namespace, deployment) (devscale_scaling_held) == 1",
             "for": "15m", "labels": {"severity": "warning"},
             "annotations": {"summary": "{{ $labels.deployment }} is held: its metrics cannot "
                             "be read, so devscale will not scale it down"}},
        ]},
    ]}


def prometheus_rule(namespace: str) -> dict[str, Any]:
    """The same rules as a Prometheus Operator `PrometheusRule` (monitoring.coreos.com/v1)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": _meta(APP, namespace), "spec": prometheus_rules()}


def dashboard_queries() -> dict[str, str]:
    """Panel title → PromQL, with `$namespace` from the dashboard's variable."""
    from devtrip_scale.scaling.presets import PRESET_VALUES, render

    def preset(name: str) -> str:
        return render(PRESET_VALUES[name], namespace="$namespace", window="5m")

    return {
        "CPU utilisation (% of requests)": preset("cpu_utilization"),
        "Memory utilisation (% of requests)": preset("memory_utilization"),
        "Active users": 'sum by (deployment) (devtrip:active_users_total{namespace="$namespace"})',
        "Requests per second": preset("http_requests_per_second"),
        "p95 latency (s)": preset("http_p95_latency_seconds"),
        "Replicas: desired (devscale) and current":
            'devscale_desired_replicas{namespace="$namespace"} or '
            'devscale_current_replicas{namespace="$namespace"}',
        "Scaling events per hour (devscale run)":
            'sum by (deployment, action) (increase(devscale_decisions_total{namespace='
            '"$namespace", action=~"scale_up|scale_down"}[1h]))',
        "Capacity exhausted / held": 'devscale_capacity_exhausted{namespace="$namespace"} or '
                                     'devscale_scaling_held{namespace="$namespace"}',
    }


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard (schema 39) with one time-series panel per query."""
    panels = [{
        "id": i + 1, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{deployment}}"}],
    } for i, (title, expr) in enumerate(dashboard_queries().items())]
    return {
        "title": "devscale", "uid": "devscale", "schemaVersion": 39, "version": 1,
        "tags": ["devscale", "autoscaling"], "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(kube_deployment_spec_replicas, namespace)", "refresh": 2},
        ]},
        "panels": panels,
    }


def dump(objects: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)
