"""The typed config: YAML plus environment, validated once; errors name file, line, field."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from a string when it builds these models, a share of `config validate`'s start.
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from devtrip_scale.core.yamlfile import (
    DNS_LABEL,
    Model,
    Path_,
    check_namespace,
    read_document,
    validation_error,
)
from devtrip_scale.notify.settings import NotifyModel
from devtrip_scale.scaling import models
from devtrip_scale.scaling.presets import PLACEHOLDERS, PRESETS, render
from devtrip_scale.scaling.selectors import check_selector

_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
# `{name}` in a query: a placeholder (PromQL's own braces never hold a bare identifier).
_ANY_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


def check_url(url: str) -> str:
    """An http(s) URL with a host and a valid port, or a ValueError saying what is wrong."""
    example = "such as http://prometheus:9090"
    if any(c.isspace() for c in url):
        raise ValueError(f"{url!r} is not a URL: it contains white space")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL {example}")
    if not parts.hostname or not _HOST.match(parts.hostname):
        raise ValueError(f"{url!r} has no valid host name ({example})")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port ({example})") from None
    return url


_PARSER_READY = False


def promql_problem(query: str) -> str | None:
    """Why a PromQL expression does not parse (promql-parser, Prometheus' grammar), or None."""
    global _PARSER_READY
    import promql_parser  # imported here: the parser is only needed to validate a query

    if not _PARSER_READY:  # Prometheus 2.x name of double_exponential_smoothing
        vt = promql_parser.ValueType
        promql_parser.register_extra_functions([promql_parser.Function(
            "holt_winters", [vt.Matrix, vt.Scalar, vt.Scalar], vt.Vector)])
        _PARSER_READY = True
    try:
        promql_parser.parse(query)
    except ValueError as e:
        return str(e) or "it does not parse"
    return None


class ScalingPolicyModel(Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class ScalingRulesModel(Model):
    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: tuple[ScalingPolicyModel, ...] | None = None
    tolerance: float | None = Field(default=None, ge=0)

    def to_rules(self, default: models.ScalingRules) -> models.ScalingRules:
        return models.ScalingRules(
            stabilization_window_seconds=(
                default.stabilization_window_seconds
                if self.stabilization_window_seconds is None
                else self.stabilization_window_seconds
            ),
            select_policy=self.select_policy,
            policies=(
                default.policies
                if self.policies is None
                else tuple(
                    models.ScalingPolicy(p.type, p.value, p.period_seconds) for p in self.policies
                )
            ),
            tolerance=self.tolerance,
        )


class BehaviorModel(Model):
    scale_up: ScalingRulesModel = ScalingRulesModel()
    scale_down: ScalingRulesModel = ScalingRulesModel()


class ScalingModel(Model):
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    behavior: BehaviorModel = BehaviorModel()
    scale_up_cooldown_seconds: int = Field(default=0, ge=0)
    scale_down_cooldown_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})"
            )
        return self


class TargetValueModel(Model):
    type: Literal["Utilization", "Value", "AverageValue"]
    value: float = Field(gt=0)


class HttpMetricModel(Model):
    """A value read from an HTTP endpoint that answers JSON, e.g. GET /metrics/waiting-jobs."""

    url: str
    field: str | None = Field(default=None, description="dotted path to the number, e.g. "
                              "queues.jobs.waiting; unset: the body is the number")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if placeholder := _ANY_PLACEHOLDER.search(url):
            raise ValueError(f"{placeholder.group(0)} in a URL is not filled: placeholders "
                             "are filled only in PromQL queries")
        return check_url(url)


class MetricModel(Model):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    preset: str | None = None
    query: str | None = Field(default=None, min_length=1)
    http: HttpMetricModel | None = None
    window: str = "2m"
    target: TargetValueModel

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str | None) -> str | None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        return preset

    @field_validator("query")
    @classmethod
    def _promql(cls, query: str | None) -> str | None:
        if query is None:
            return None
        unknown = [p for p in _ANY_PLACEHOLDER.findall(query) if p not in PLACEHOLDERS]
        if unknown:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; known: {known}")
        if problem := promql_problem(render(query, namespace="default", window="2m")):
            raise ValueError(f"not valid PromQL: {problem}")
        return query

    @field_validator("window")
    @classmethod
    def _duration(cls, window: str) -> str:
        if not _DURATION.match(window):
            raise ValueError(f"{window!r} is not a PromQL duration such as 2m or 30s")
        return window

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if sum(x is not None for x in (self.preset, self.query, self.http)) != 1:
            raise ValueError("give exactly one of `preset`, `query` or `http`")
        return self

    @property
    def promql(self) -> str:
        """The PromQL template of a preset or query metric ("" for an http metric)."""
        if self.preset is not None:
            return PRESETS[self.preset]
        return self.query or ""


class TargetModel(Model):
    deployment: str | None = None
    selector: str | None = None
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.deployment is None) == (self.selector is None):
            raise ValueError("give exactly one of `deployment` or `selector`")
        if self.deployment is not None and not DNS_LABEL.match(self.deployment):
            raise ValueError(f"{self.deployment!r} is not a valid Deployment name")
        return self

    @field_validator("selector")
    @classmethod
    def _selector(cls, selector: str | None) -> str | None:
        return None if selector is None else check_selector(selector)


class PrometheusModel(Model):
    url: str = "http://localhost:9090"
    timeout_seconds: float = Field(default=10, gt=0, le=300)
    bearer_token_env: str | None = None
    cache_seconds: float = Field(default=0, ge=0, le=3600,
                                 description="`devscale run`: reuse readings this long")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)


POLICY_ANNOTATION = "devscale.devtrip.io/policy"
MIN_ANNOTATION = "devscale.devtrip.io/min-replicas"
MAX_ANNOTATION = "devscale.devtrip.io/max-replicas"


class BoundsModel(Model):
    """The range a team's annotation may choose a value from."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class OverridesModel(Model):
    """What a Deployment's own annotations may change of its policy; unset: nothing."""

    min_replicas: BoundsModel | None = None
    max_replicas: BoundsModel | None = None


class PolicyModel(Model):
    """A named policy of a fleet config: limits, behaviour, metrics and their targets.

    A Deployment joins it by the annotation `devscale.devtrip.io/policy: NAME`."""

    scaling: ScalingModel = ScalingModel()
    metrics: tuple[MetricModel, ...] = Field(min_length=1)
    overrides: OverridesModel = OverridesModel()

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, metrics: tuple[MetricModel, ...]) -> tuple[MetricModel, ...]:
        _refuse_duplicates("metric name", [m.name for m in metrics])
        return metrics

    @model_validator(mode="after")
    def _bounds_within_limits(self) -> Self:
        for name, bounds in (("minReplicas", self.overrides.min_replicas),
                             ("maxReplicas", self.overrides.max_replicas)):
            if bounds is not None and name == "maxReplicas" and bounds.min < 1:
                raise ValueError(f"overrides.{name}.min: at least 1 (a maximum of 0 stops "
                                 "the Deployment)")
        return self


class RouteModel(Model):
    """A Slack channel per namespace or team: the webhook in `$PREFIX<VALUE>`, VALUE the
    namespace's name (or its `label`'s value) in upper case with '-' and '.' as '_'; a
    namespace whose variable is unset goes to the config's own channels."""

    label: str | None = Field(default=None, description="a namespace label, e.g. team")
    slack_webhook_env_prefix: str = Field(default="SLACK_WEBHOOK_",
                                          pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def env_name(self, value: str) -> str:
        return self.slack_webhook_env_prefix + re.sub(r"[^A-Za-z0-9]", "_", value).upper()


class FleetModel(Model):
    """How a fleet pass finds its Deployments and how much it may change at once."""

    policy_annotation: str = POLICY_ANNOTATION
    deployment_selector: str | None = Field(default=None, description="a label selector the "
                                            "API server applies to the cluster-wide list")
    max_writes_per_pass: int = Field(default=50, ge=1)
    max_writes_per_namespace: int = Field(default=10, ge=1)
    page_size: int = Field(default=500, ge=1, le=10_000)
    notify_route: RouteModel | None = None

    @field_validator("deployment_selector")
    @classmethod
    def _selector(cls, selector: str | None) -> str | None:
        return None if selector is None else check_selector(selector)


class Settings(Model):
    """The whole configuration file.

    Either one namespace's `targets` and `metrics` (today's form), or a fleet: `namespaces`
    (a list), `namespaceSelector` (a label selector on namespaces) or `allNamespaces: true`,
    with named `policies` that Deployments join by annotation. In a fleet config `namespace`
    is where devscale's own Lease and run state live.
    """

    namespace: str = "default"
    prometheus: PrometheusModel = PrometheusModel()
    scaling: ScalingModel = ScalingModel()
    targets: tuple[TargetModel, ...] = Field(default=(), min_length=1)
    metrics: tuple[MetricModel, ...] = Field(default=(), min_length=1)
    history_configmap: str = "devscale-history"
    notify: NotifyModel = NotifyModel()
    namespaces: tuple[str, ...] | None = Field(default=None, min_length=1)
    namespace_selector: str | None = None
    all_namespaces: bool = False
    policies: dict[str, PolicyModel] | None = Field(default=None, min_length=1)
    fleet: FleetModel = FleetModel()

    _namespace = field_validator("namespace")(check_namespace)

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is not None:
            for name in names:
                check_namespace(name)
            _refuse_duplicates("namespace", list(names))
        return names

    @field_validator("namespace_selector")
    @classmethod
    def _namespace_selector(cls, selector: str | None) -> str | None:
        return None if selector is None else check_selector(selector)

    @field_validator("policies")
    @classmethod
    def _policy_names(cls, policies: dict[str, PolicyModel] | None
                      ) -> dict[str, PolicyModel] | None:
        for name in policies or {}:
            if not DNS_LABEL.match(name) or len(name) > 63:
                raise ValueError(f"policy name {name!r}: lower-case letters, digits and '-' "
                                 "(it is an annotation's value)")
        return policies

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        chosen = [key for key, on in (("namespaces", self.namespaces is not None),
                                      ("namespaceSelector", self.namespace_selector is not None),
                                      ("allNamespaces", self.all_namespaces)) if on]
        if len(chosen) > 1:
            raise ValueError(f"{chosen[1]}: give one of `namespaces`, `namespaceSelector` or "
                             f"`allNamespaces`, not also `{chosen[0]}`")
        if chosen and self.policies is None:
            raise ValueError(f"{chosen[0]}: a fleet config needs `policies:` that Deployments "
                             "join by annotation")
        if self.policies is not None:
            if not chosen:
                raise ValueError("policies: say which namespaces the fleet covers: "
                                 "`namespaces: [a, b]`, `namespaceSelector: team` or "
                                 "`allNamespaces: true`")
            for key, given in (("targets", self.targets), ("metrics", self.metrics)):
                if given:
                    raise ValueError(f"{key}: a fleet config names its metrics in each policy "
                                     "and takes its Deployments by the annotation "
                                     f"{self.fleet.policy_annotation}; drop `{key}`")
            _same_queries(self.policies)
            return self
        for key, given in (("targets", self.targets), ("metrics", self.metrics)):
            if not given:
                raise ValueError(f"{key}: Field required")
        return self

    @property
    def is_fleet(self) -> bool:
        """A config over many namespaces, Deployments joining named policies by annotation."""
        return self.policies is not None

    def fleet_metrics(self) -> list[MetricModel]:
        """Every metric of every policy, once per name (one query each for the whole fleet)."""
        seen: dict[str, MetricModel] = {}
        for policy in (self.policies or {}).values():
            for m in policy.metrics:
                seen.setdefault(m.name, m)
        return list(seen.values())

    def for_policy(self, name: str, namespace: str | None = None) -> "Settings":
        """One policy of a fleet config as a one-namespace config of the Deployments that
        joined it (what `simulate` replays); KeyError for a name that is no policy."""
        policy = (self.policies or {})[name]
        return Settings.model_validate({
            "namespace": namespace or self.namespace, "prometheus": self.prometheus,
            "scaling": policy.scaling, "metrics": policy.metrics, "notify": self.notify,
            "history_configmap": self.history_configmap,
            "targets": [{"selector": f"{self.fleet.policy_annotation}"}]})

    def fleet_policy(self, name: str) -> models.PolicySpec:
        """The policy spec of a named policy, before any Deployment's overrides."""
        return _spec(self.policies[name].scaling if self.policies else self.scaling)

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, metrics: tuple[MetricModel, ...]) -> tuple[MetricModel, ...]:
        _refuse_duplicates("metric name", [m.name for m in metrics])
        return metrics

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: tuple[TargetModel, ...]) -> tuple[TargetModel, ...]:
        _refuse_duplicates("deployment target", [t.deployment for t in targets if t.deployment])
        _refuse_duplicates("selector target", [t.selector for t in targets if t.selector])
        return targets

    @model_validator(mode="after")
    def _target_ranges(self) -> Self:
        for i, t in enumerate(self.targets):
            spec = self.policy_for(t)
            if spec.min_replicas > spec.max_replicas:
                # A leading field path lets the error name its line (see _format_errors).
                raise ValueError(f"targets[{i}]: minReplicas ({spec.min_replicas}) is above "
                                 f"maxReplicas ({spec.max_replicas}) of the scaling block")
        return self

    def policy_for(self, target: TargetModel | None) -> models.PolicySpec:
        """The policy spec of one target: the global scaling block with its overrides."""
        s = self.scaling
        low = s.min_replicas if target is None or target.min_replicas is None \
            else target.min_replicas
        high = s.max_replicas if target is None or target.max_replicas is None \
            else target.max_replicas
        return replace(_spec(s), min_replicas=low, max_replicas=high)

    def prometheus_token(self) -> str | None:
        """The bearer token, read from the environment variable the config names."""
        name = self.prometheus.bearer_token_env
        return os.environ.get(name) if name else None


def _spec(s: ScalingModel) -> models.PolicySpec:
    return models.PolicySpec(
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        tolerance=s.tolerance,
        scale_up=s.behavior.scale_up.to_rules(models.HPA_DEFAULT_SCALE_UP),
        scale_down=s.behavior.scale_down.to_rules(models.HPA_DEFAULT_SCALE_DOWN),
        scale_up_cooldown_seconds=s.scale_up_cooldown_seconds,
        scale_down_cooldown_seconds=s.scale_down_cooldown_seconds,
    )


def _same_queries(policies: Mapping[str, PolicyModel]) -> None:
    """A metric name means one query for the whole fleet: policies may give it other targets,
    never another query or window."""
    first: dict[str, tuple[str, MetricModel]] = {}
    for name, policy in policies.items():
        for i, m in enumerate(policy.metrics):
            if m.name not in first:
                first[m.name] = (name, m)
                continue
            other, seen = first[m.name]
            if (m.promql, m.window, m.http) != (seen.promql, seen.window, seen.http):
                raise ValueError(
                    f"policies.{name}.metrics[{i}]: metric {m.name!r} is read differently in "
                    f"policy {other!r}; a fleet reads each metric name with one query: give "
                    "it the same preset, query and window, or another name")


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as `config show` prints them: every default filled in, unset options left out.

    The HPA's behaviour defaults, the tolerance of each direction and each target's replica
    range are shown as they apply, not as the `null` that means "the default".
    """
    data: dict[str, Any] = settings.model_dump(mode="json", by_alias=True, exclude_none=True)
    if settings.is_fleet:
        for name, shown in data["policies"].items():
            spec = settings.fleet_policy(name)
            shown["scaling"]["behavior"] = {
                "scaleUp": _rules_dict(spec.scale_up, spec.tolerance),
                "scaleDown": _rules_dict(spec.scale_down, spec.tolerance),
            }
        for unused in ("scaling", "targets", "metrics"):
            data.pop(unused, None)
        return data
    for fleet_only in ("fleet", "allNamespaces"):
        data.pop(fleet_only, None)
    spec = settings.policy_for(None)
    data["scaling"]["behavior"] = {
        "scaleUp": _rules_dict(spec.scale_up, spec.tolerance),
        "scaleDown": _rules_dict(spec.scale_down, spec.tolerance),
    }
    for target, shown in zip(settings.targets, data["targets"], strict=True):
        own = settings.policy_for(target)
        shown.update(minReplicas=own.min_replicas, maxReplicas=own.max_replicas)
    return data


def _rules_dict(rules: models.ScalingRules, tolerance: float) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                     for p in rules.policies],
        "tolerance": tolerance if rules.tolerance is None else rules.tolerance,
    }


def _refuse_duplicates(what: str, items: list[str]) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate {what} {item!r}")
        seen.add(item)


def load_config(path: Path, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None,
                sources: Mapping[str, str] | None = None) -> Settings:
    """Read, override (environment, then `overrides`) and validate.

    Every error names the file, the line and the field; a bad value that came from the
    environment or from `overrides` names that instead (`sources` maps an override's key to
    the flag it came from, e.g. {"namespace": "--namespace"}).
    """
    env = os.environ if env is None else env
    data, node = read_document(path)
    data, origins = _apply_env(data, env)
    for key, value in (overrides or {}).items():
        data[key] = value
        origins[(key,)] = (sources or {}).get(key, f"--{key.replace('_', '-')}")
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise validation_error(path, e, node, origins) from None


def _apply_env(data: dict[str, Any], env: Mapping[str, str]
               ) -> tuple[dict[str, Any], dict[Path_, str]]:
    """The data with the environment's overrides, and where each overridden field came from."""
    data = dict(data)
    origins: dict[Path_, str] = {}
    if env.get("NAMESPACE"):
        data["namespace"] = env["NAMESPACE"]
        origins[("namespace",)] = "$NAMESPACE"
    if env.get("EMAIL_RECIPIENTS") and isinstance(data.get("notify"), dict) and \
            isinstance(data["notify"].get("email"), dict):
        recipients = [r.strip() for r in env["EMAIL_RECIPIENTS"].split(",") if r.strip()]
        data["notify"] = {**data["notify"], "email": {**data["notify"]["email"],
                                                      "recipients": recipients}}
        origins[("notify", "email", "recipients")] = "$EMAIL_RECIPIENTS"
    if env.get("METRICS_SERVER"):
        url = env["METRICS_SERVER"]
        if "://" not in url:
            url = f"http://{url}"
        prom = data.get("prometheus")
        data["prometheus"] = {**(prom if isinstance(prom, dict) else {}), "url": url}
        origins[("prometheus", "url")] = "$METRICS_SERVER"
    return data, origins

