"""Built-in PromQL for the series real clusters export, each returning one series per Deployment."""

from __future__ import annotations

import re

# A Deployment's pods are named <deployment>-<pod-template-hash>-<5 characters>.
_POD_TO_DEPLOYMENT = '"deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]{5}"'


def _by_deployment(expr: str) -> str:
    return f"sum by (deployment) (label_replace({expr}, {_POD_TO_DEPLOYMENT}))"


PRESETS: dict[str, str] = {
    # CPU used over CPU requested, in percent, as the HPA's Utilization target computes it.
    "cpu_utilization": (
        "100 * "
        + _by_deployment(
            'rate(container_cpu_usage_seconds_total{namespace="{namespace}", container!="", '
            'container!="POD"}[{window}])'
        )
        + " / "
        + _by_deployment(
            'kube_pod_container_resource_requests{namespace="{namespace}", resource="cpu"}'
        )
    ),
    # Working-set memory over memory requested, in percent.
    "memory_utilization": (
        "100 * "
        + _by_deployment(
            'container_memory_working_set_bytes{namespace="{namespace}", container!="", '
            'container!="POD"}'
        )
        + " / "
        + _by_deployment(
            'kube_pod_container_resource_requests{namespace="{namespace}", resource="memory"}'
        )
    ),
    # Requests per second served by all pods of the Deployment.
    "http_requests_per_second": _by_deployment(
        'rate(http_requests_total{namespace="{namespace}"}[{window}])'
    ),
    # 95th percentile response time in seconds over all pods of the Deployment.
    "http_p95_latency_seconds": (
        "histogram_quantile(0.95, sum by (deployment, le) (label_replace("
        'rate(http_request_duration_seconds_bucket{namespace="{namespace}"}[{window}]), '
        f"{_POD_TO_DEPLOYMENT})))"
    ),
}

PLACEHOLDERS = ("namespace", "window")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def render(query: str, **values: str) -> str:
    """Fill `{namespace}`-style placeholders; PromQL's own braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)
