"""A fleet config's pure parts: which policy a Deployment joined, with its own min/max, and the
one PromQL query per metric for every namespace of the pass (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from devtrip_scale.scaling.config import MAX_ANNOTATION, MIN_ANNOTATION, MetricModel, Settings
from devtrip_scale.scaling.models import PolicySpec
from devtrip_scale.scaling.ports import MetricQuery
from devtrip_scale.scaling.presets import render

# Up to this many namespaces the queries name them (`namespace=~"a|b|…"`); beyond, they read
# every namespace and the pass keeps the series of its own (a shorter query, the same answer).
MAX_NAMED_NAMESPACES = 100
_BY_DEPLOYMENT = re.compile(r"\bby\s*\(\s*deployment\b")


def key(namespace: str, deployment: str) -> str:
    """How a fleet pass names one Deployment: `namespace/name` (a series' label in a query)."""
    return f"{namespace}/{deployment}"


@dataclass(frozen=True)
class Joined:
    """A Deployment that joined a policy: the policy's name and its spec with the overrides."""

    policy: str
    spec: PolicySpec
    metrics: tuple[MetricModel, ...]


def join(settings: Settings, annotations: Mapping[str, str],
         specs: Mapping[str, PolicySpec] | None = None) -> Joined | str | None:
    """The policy a Deployment's annotations ask for; None when it did not opt in; a sentence
    naming the bad value when an annotation is wrong (the Deployment is then left alone).
    `specs`: each policy's spec, computed once for a pass (see `policy_specs`)."""
    marker = settings.fleet.policy_annotation
    name = annotations.get(marker)
    if name is None:
        return None
    policies = settings.policies or {}
    if name not in policies:
        known = ", ".join(sorted(policies))
        return f"annotation {marker}: {name!r} is not a policy of this config (known: {known})"
    policy = policies[name]
    spec = specs[name] if specs is not None else settings.fleet_policy(name)
    low, high = spec.min_replicas, spec.max_replicas
    for annotation, bounds, field in (
            (MIN_ANNOTATION, policy.overrides.min_replicas, "minReplicas"),
            (MAX_ANNOTATION, policy.overrides.max_replicas, "maxReplicas")):
        text = annotations.get(annotation)
        if text is None:
            continue
        if bounds is None:
            return (f"annotation {annotation}: {text!r}, but policy {name} does not let a "
                    f"Deployment change its {field} (the platform's config sets no "
                    f"overrides.{field})")
        if not re.fullmatch(r"[0-9]{1,6}", text.strip()):
            return f"annotation {annotation}: {text!r} is not a whole number"
        value = int(text)
        if not bounds.min <= value <= bounds.max:
            return (f"annotation {annotation}: {value} is outside {bounds.min}..{bounds.max}, "
                    f"the range policy {name} allows")
        if field == "minReplicas":
            low = value
        else:
            high = value
    if low > high:
        return (f"annotations: minReplicas {low} is above maxReplicas {high} "
                f"(policy {name} with this Deployment's overrides)")
    return Joined(name, replace(spec, min_replicas=low, max_replicas=high), policy.metrics)


def policy_specs(settings: Settings) -> dict[str, PolicySpec]:
    """Each named policy's spec, before any Deployment's overrides."""
    return {name: settings.fleet_policy(name) for name in settings.policies or {}}


def fleet_queries(settings: Settings, namespaces: Collection[str]) -> list[MetricQuery]:
    """One query per metric name for every namespace of the pass, each series labelled
    `deployment="namespace/name"`.

    A query written for one namespace becomes one for many: `namespace="{namespace}"` matches
    the pass's namespaces, `by (deployment …)` groups by namespace too, and `label_join` folds
    the namespace into the `deployment` label. A query without `by (deployment` (a queue's
    depth) stays one shared value.
    """
    wanted = sorted(namespaces)
    matcher = "|".join(wanted) if 0 < len(wanted) <= MAX_NAMED_NAMESPACES else ".+"
    return [MetricQuery(m.name, url=m.http.url, field=m.http.field) if m.http is not None
            else MetricQuery(m.name, fleet_promql(m.promql, matcher, m.window))
            for m in settings.fleet_metrics()]


def fleet_promql(template: str, namespaces: str, window: str) -> str:
    """A one-namespace query template made into one over the namespaces regex `namespaces`."""
    query = template.replace('namespace="{namespace}"', 'namespace=~"{namespace}"')
    grouped = _BY_DEPLOYMENT.search(query) is not None
    query = _BY_DEPLOYMENT.sub("by (namespace, deployment", query)
    query = render(query, namespace=namespaces, window=window)
    if not grouped:
        return query
    return f'label_join({query}, "deployment", "/", "namespace", "deployment")'
