"""Built-in PromQL for the series real clusters export, each returning one series per Deployment.

The presets of per-pod metrics (CPU and memory utilisation, requests per second) answer, in the
same query, how many pods stand behind each Deployment's value: a second series per Deployment,
labelled `devscale_series="pods"`, joined with `or` (its label set differs, so `or` keeps both).
The policy counts the ready pods beyond that number as the HPA's missing pods (`groupPods`).
"""

from __future__ import annotations

import re

# A Deployment's pods are named <deployment>-<pod-template-hash>-<5 characters>.
_POD_TO_DEPLOYMENT = '"deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]{5}"'


def _by_deployment(expr: str) -> str:
    return f"sum by (deployment) (label_replace({expr}, {_POD_TO_DEPLOYMENT}))"


def pods_behind(expr: str) -> str:
    """The number of pods with a sample of `expr`, per Deployment, marked as the pod count."""
    return ('label_replace(count by (deployment) (count by (deployment, pod) (label_replace('
            f'{expr}, {_POD_TO_DEPLOYMENT}))), "devscale_series", "pods", "", "")')


_CPU_USED = ('rate(container_cpu_usage_seconds_total{namespace="{namespace}", container!="", '
             'container!="POD"}[{window}])')
_MEMORY_USED = ('container_memory_working_set_bytes{namespace="{namespace}", container!="", '
                'container!="POD"}')
_REQUESTS = 'kube_pod_container_resource_requests{namespace="{namespace}", resource="%s"}'
_RPS = 'rate(http_requests_total{namespace="{namespace}"}[{window}])'


def _utilization(used: str, resource: str) -> str:
    """Used over requested, in percent, over the pods that have a sample of `used` (the HPA's
    GetResourceUtilizationRatio sums the requests of the pods it has metrics for)."""
    requested = f"{_REQUESTS % resource} and on (namespace, pod) {used}"
    return f"100 * {_by_deployment(used)} / {_by_deployment(requested)}"


# The value alone, per preset (for dashboards); PRESETS adds the pod count where it applies.
PRESET_VALUES: dict[str, str] = {
    # CPU used over CPU requested, in percent, as the HPA's Utilization target computes it.
    "cpu_utilization": _utilization(_CPU_USED, "cpu"),
    # Working-set memory over memory requested, in percent.
    "memory_utilization": _utilization(_MEMORY_USED, "memory"),
    # Requests per second served by all pods of the Deployment.
    "http_requests_per_second": _by_deployment(_RPS),
    # 95th percentile response time in seconds over all pods of the Deployment.
    "http_p95_latency_seconds": (
        "histogram_quantile(0.95, sum by (deployment, le) (label_replace("
        'rate(http_request_duration_seconds_bucket{namespace="{namespace}"}[{window}]), '
        f"{_POD_TO_DEPLOYMENT})))"
    ),
}

PRESETS: dict[str, str] = {
    **PRESET_VALUES,
    "cpu_utilization": f"{PRESET_VALUES['cpu_utilization']} or {pods_behind(_CPU_USED)}",
    "memory_utilization": f"{PRESET_VALUES['memory_utilization']} or {pods_behind(_MEMORY_USED)}",
    "http_requests_per_second": f"{PRESET_VALUES['http_requests_per_second']} or "
                                f"{pods_behind(_RPS)}",
}

PLACEHOLDERS = ("namespace", "window")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def render(query: str, **values: str) -> str:
    """Fill `{namespace}`-style placeholders; PromQL's own braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)
