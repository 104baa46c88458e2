"""The typed config: YAML plus environment, validated once; errors name file, line, field."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from devtrip_scale import models
from devtrip_scale.errors import ConfigError
from devtrip_scale.presets import PRESETS

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


class _Model(BaseModel):
    """Frozen, unknown keys refused, snake_case or the HPA's camelCase accepted."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class ScalingPolicyModel(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class ScalingRulesModel(_Model):
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


class BehaviorModel(_Model):
    scale_up: ScalingRulesModel = ScalingRulesModel()
    scale_down: ScalingRulesModel = ScalingRulesModel()


class ScalingModel(_Model):
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    behavior: BehaviorModel = BehaviorModel()
    scale_up_cooldown_seconds: int = Field(default=0, ge=0)
    scale_down_cooldown_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ScalingModel:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})"
            )
        return self


class TargetValueModel(_Model):
    type: Literal["Utilization", "Value", "AverageValue"]
    value: float = Field(gt=0)


class HttpMetricModel(_Model):
    """A value read from an HTTP endpoint that answers JSON, e.g. GET /metrics/waiting-jobs."""

    url: str = Field(pattern=r"^https?://")
    field: str | None = Field(default=None, description="dotted path to the number, e.g. "
                              "queues.jobs.waiting; unset: the body is the number")


class MetricModel(_Model):
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

    @field_validator("window")
    @classmethod
    def _duration(cls, window: str) -> str:
        if not _DURATION.match(window):
            raise ValueError(f"{window!r} is not a PromQL duration such as 2m or 30s")
        return window

    @model_validator(mode="after")
    def _one_source(self) -> MetricModel:
        if sum(x is not None for x in (self.preset, self.query, self.http)) != 1:
            raise ValueError("give exactly one of `preset`, `query` or `http`")
        return self

    @property
    def promql(self) -> str:
        """The PromQL template of a preset or query metric ("" for an http metric)."""
        if self.preset is not None:
            return PRESETS[self.preset]
        return self.query or ""


class TargetModel(_Model):
    deployment: str | None = None
    selector: str | None = None
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_way(self) -> TargetModel:
        if (self.deployment is None) == (self.selector is None):
            raise ValueError("give exactly one of `deployment` or `selector`")
        if self.deployment is not None and not _DNS_LABEL.match(self.deployment):
            raise ValueError(f"{self.deployment!r} is not a valid Deployment name")
        return self


class PrometheusModel(_Model):
    url: str = "http://localhost:9090"
    timeout_seconds: float = Field(default=10, gt=0, le=300)
    bearer_token_env: str | None = None
    cache_seconds: float = Field(default=0, ge=0, le=3600,
                                 description="`devscale run`: reuse readings this long")


NotifyKind = Literal["scaled", "capacity_exhausted", "held", "failed", "recovered"]


class SlackModel(_Model):
    """Slack incoming webhook; enabled when the env var it names holds the URL."""

    webhook_env: str = "SLACK_WEBHOOK"
    kinds: tuple[NotifyKind, ...] = ("scaled", "capacity_exhausted", "held", "failed",
                                     "recovered")
    timeout_seconds: float = Field(default=5, gt=0, le=60)


class EmailModel(_Model):
    """SMTP delivery; recipients from the file or $EMAIL_RECIPIENTS (comma separated)."""

    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(min_length=3, pattern=r"@")
    recipients: tuple[str, ...] = ()
    ca_file: str | None = None
    kinds: tuple[NotifyKind, ...] = ("capacity_exhausted", "failed", "recovered")
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        for r in recipients:
            if "@" not in r:
                raise ValueError(f"{r!r} is not an email address")
        return recipients


class NotifyModel(_Model):
    quiet_minutes: float = Field(default=30, ge=0)
    lock_contention_runs: int = Field(
        default=3, ge=1, description="tell when this many runs in a row found the lock held")
    slack: SlackModel = SlackModel()
    email: EmailModel | None = None


class Settings(_Model):
    """The whole configuration file."""

    namespace: str = "default"
    prometheus: PrometheusModel = PrometheusModel()
    scaling: ScalingModel = ScalingModel()
    targets: tuple[TargetModel, ...] = Field(min_length=1)
    metrics: tuple[MetricModel, ...] = Field(min_length=1)
    history_configmap: str = "devscale-history"
    notify: NotifyModel = NotifyModel()

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        if not _DNS_LABEL.match(namespace):
            raise ValueError(f"{namespace!r} is not a valid namespace name")
        return namespace

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
    def _target_ranges(self) -> Settings:
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
        return models.PolicySpec(
            min_replicas=low,
            max_replicas=high,
            tolerance=s.tolerance,
            scale_up=s.behavior.scale_up.to_rules(models.HPA_DEFAULT_SCALE_UP),
            scale_down=s.behavior.scale_down.to_rules(models.HPA_DEFAULT_SCALE_DOWN),
            scale_up_cooldown_seconds=s.scale_up_cooldown_seconds,
            scale_down_cooldown_seconds=s.scale_down_cooldown_seconds,
        )

    def prometheus_token(self) -> str | None:
        """The bearer token, read from the environment variable the config names."""
        name = self.prometheus.bearer_token_env
        return os.environ.get(name) if name else None


def config_id(path: Path) -> str:
    """A short id of a config file, stable across runs: the crontab tag, the run memory's name."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def field_line(path: Path, loc: tuple[str | int, ...]) -> int:
    """The line of a field in a config file that has already loaded (for later checks)."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return _nearest_line(loc, _line_index(node)) if node is not None else 1


def _refuse_duplicates(what: str, items: list[str]) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate {what} {item!r}")
        seen.add(item)


def load_config(path: Path, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, override (environment, then `overrides`) and validate.

    Every error names the file, the line and the field.
    """
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    loader = yaml.SafeLoader(text)
    try:  # one parse: the node tree for line numbers, the data built from it
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of settings")
    data = {**_apply_env(data, env), **(overrides or {})}
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        lines = _line_index(node) if node is not None else {}
        raise ConfigError(_format_errors(path, e, lines)) from None


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    data = dict(data)
    if env.get("NAMESPACE"):
        data["namespace"] = env["NAMESPACE"]
    if env.get("EMAIL_RECIPIENTS") and isinstance(data.get("notify"), dict) and \
            isinstance(data["notify"].get("email"), dict):
        recipients = [r.strip() for r in env["EMAIL_RECIPIENTS"].split(",") if r.strip()]
        data["notify"] = {**data["notify"], "email": {**data["notify"]["email"],
                                                      "recipients": recipients}}
    if env.get("METRICS_SERVER"):
        url = env["METRICS_SERVER"]
        if "://" not in url:
            url = f"http://{url}"
        prom = data.get("prometheus")
        data["prometheus"] = {**(prom if isinstance(prom, dict) else {}), "url": url}
    return data


Path_ = tuple[str | int, ...]


def _line_index(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    """Map each key path of the YAML document to its 1-based line."""
    index = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            index.update(_line_index(value, sub))
            index[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _format_errors(path: Path, err: ValidationError, lines: dict[Path_, int]) -> str:
    errors = err.errors()
    # pydantic adds "too short" for a list whose items failed; the item errors say more.
    failed_parents = {tuple(e["loc"][:-1]) for e in errors if len(e["loc"]) > 1}
    rows = []
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] == "too_short" and any(p[: len(loc)] == loc for p in failed_parents):
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if not loc and (lead := _LEADING_PATH.match(msg)):
            loc = _parse_path(lead.group(1))
            msg = msg[lead.end():]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; `devscale config init` writes every key)"
        rows.append((_nearest_line(loc, lines), _field(loc), msg))
    out = [f"{path}: {len(rows)} error(s) in the config"]
    out += [f"  {path}:{line}: {field}: {msg}" for line, field, msg in sorted(rows)]
    return "\n".join(out)


_LEADING_PATH = re.compile(r"^([A-Za-z_]+(?:\[\d+\]|\.[A-Za-z_]+)*): ")


def _parse_path(text: str) -> tuple[str | int, ...]:
    """`targets[0].min` → ("targets", 0, "min")."""
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[A-Za-z_]+|\d+", text))


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _nearest_line(loc: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int:
    for n in range(len(loc), -1, -1):
        key = loc[:n]
        if key in lines:
            return lines[key]
        for convert in (to_camel, to_snake):
            other = tuple(convert(p) if isinstance(p, str) else p for p in key)
            if other in lines:
                return lines[other]
    return 1
