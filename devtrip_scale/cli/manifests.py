"""`devscale manifests …`: print deployable files (CronJob or loop with RBAC, HPA, Prometheus
rules, Grafana dashboard, the workers' Deployment)."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devtrip_scale import IMAGE
from devtrip_scale.cli._common import WorkersConfigOption, err, guard, parse_duration
from devtrip_scale.core.errors import ConfigError

if TYPE_CHECKING:
    from devtrip_scale.scaling.config import Settings

app = typer.Typer(help="Print deployable files: CronJob with RBAC, HPA, Prometheus "
                  "rules, Grafana dashboard.", no_args_is_help=True)


ManifestNamespace = Annotated[str, typer.Option("--namespace", "-n")]
ImageOption = Annotated[str, typer.Option(help="The devscale container image.")]
ScaledNamespace = Annotated[str | None, typer.Option(
    "--namespace", "-n", help="The namespace that is scaled, and where the objects go "
    "(default: the config's `namespace`; a different one is an error).")]
ManifestConfig = Annotated[Path | None, typer.Option(
    "--config", "-c", help="The config to ship in the devscale-config ConfigMap (required "
    "unless --without-config).", dir_okay=False)]
WithoutConfig = Annotated[bool, typer.Option(
    "--without-config", help="Leave the devscale-config ConfigMap out (you create it, e.g. with "
    "kustomize); stderr names it.")]


def _shared_set(config: Path | None, namespace: str | None, without_config: bool
                ) -> tuple[str, tuple[tuple[str, str], ...], list[dict[str, Any]]]:
    """What the CronJob's and the loop's sets share: their namespace, the Secret's env, and the
    RBAC, Lease, history and (with a config) config ConfigMap objects."""
    from devtrip_scale.scaling import manifests as m

    ns, settings = _deploy_target(config, namespace, without_config)
    history = settings.history_configmap if settings else m.HISTORY
    secrets = m.secret_env(settings) if settings else m.DEFAULT_SECRET_ENV
    if settings is not None and settings.is_fleet:
        objects = [*m.fleet_rbac(settings), *m.fleet_state(settings)]
    else:
        objects = [*m.rbac(ns, history), *m.state(ns, history)]
    if config is not None:
        objects.append(m.config_map(ns, config.read_text(encoding="utf-8")))
    return ns, secrets, objects


def _deploy_target(config: Path | None, namespace: str | None, without_config: bool
                   ) -> tuple[str, Settings | None]:
    """The namespace a printed set scales, and the config it ships; refuses a set that would
    not start (no config) or would act elsewhere than its RBAC (namespace mismatch)."""
    from devtrip_scale.scaling.config import load_config

    if config is None:
        if not without_config:
            raise ConfigError("give -c CONFIG: the pods mount the ConfigMap devscale-config "
                              "made from it (or --without-config -n NAMESPACE to create that "
                              "ConfigMap yourself)")
        if namespace is None:
            raise ConfigError("--without-config needs -n NAMESPACE: the namespace that is "
                              "scaled")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
            raise ConfigError(f"-n {namespace!r} is not a valid namespace name (lower-case "
                              "letters, digits and '-', at most 63)")
        return namespace, None
    if without_config:
        raise ConfigError("give either -c CONFIG or --without-config, not both")
    # The file as the pod will read it: the environment of this shell does not go along.
    settings = load_config(config, env={})
    if namespace is not None and namespace != settings.namespace:
        raise ConfigError(f"-n {namespace} but {config} scales namespace "
                          f"{settings.namespace}: the RBAC and the job must live where the "
                          f"config scales; drop -n, or change `namespace:` in {config}")
    return settings.namespace, settings


def _print_set(objects: list[dict[str, Any]], notes: list[str]) -> None:
    from devtrip_scale.scaling import manifests as m

    print(m.dump(objects), end="")
    for note in notes:
        err.print(f"devscale: notice: {note}", style="yellow", markup=False)


@app.command("cronjob")
def manifests_cronjob(
    config: ManifestConfig = None,
    namespace: ScaledNamespace = None,
    image: ImageOption = IMAGE,
    schedule: Annotated[str, typer.Option(help="Cron schedule.")] = "*/2 * * * *",
    without_config: WithoutConfig = False,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", metavar="URL", help="Push each run's outcome to this Prometheus "
        "Pushgateway (sets $DEVSCALE_PUSHGATEWAY in the job).")] = None,
) -> None:
    """ServiceAccount, least-privilege Role and RoleBinding, Lease, history and config
    ConfigMaps, and the CronJob (every 2 minutes, never two at once).

    Example: devscale manifests cronjob -c devscale.yaml | kubectl apply -f -
    """

    def body() -> int:
        from devtrip_scale.core.redact import redact_url
        from devtrip_scale.scaling import manifests as m
        from devtrip_scale.scaling.cron import validate_schedule
        from devtrip_scale.scaling.pushgateway import PUSHGATEWAY_ENV

        validate_schedule(schedule, kubernetes=True)
        ns, secrets, objects = _shared_set(config, namespace, without_config)
        if pushgateway and redact_url(pushgateway) != pushgateway:  # credentials go in the Secret
            secrets, pushgateway_url = (*secrets, (PUSHGATEWAY_ENV, "pushgateway-url")), None
        else:
            pushgateway_url = pushgateway
        fleet = any(o["kind"] == "ClusterRole" for o in objects)
        # A fleet's `--namespace` narrows its pass: its job is pinned by its config instead.
        objects.append(m.cronjob(ns, image, schedule, pin_namespace=not fleet,
                                 secret_env=secrets,
                                 pushgateway=pushgateway_url))
        _print_set(objects, m.not_emitted(ns, secrets, config=config is not None))
        return 0

    guard(False, body)


@app.command("loop")
def manifests_loop(
    config: ManifestConfig = None,
    namespace: ScaledNamespace = None,
    image: ImageOption = IMAGE,
    interval: Annotated[str, typer.Option(help="Time between passes.")] = "60s",
    without_config: WithoutConfig = False,
) -> None:
    """`devscale run` as a Deployment of two replicas (one leads), with the same RBAC, Lease,
    history and config ConfigMaps.

    Example: devscale manifests loop -c devscale.yaml --interval 60s | kubectl apply -f -
    """

    def body() -> int:
        from devtrip_scale.scaling import manifests as m

        parse_duration(interval, "--interval")
        ns, secrets, objects = _shared_set(config, namespace, without_config)
        objects.append(m.loop_deployment(ns, image, interval, pin_namespace=True,
                                         secret_env=secrets))
        _print_set(objects, m.not_emitted(ns, secrets, config=config is not None))
        return 0

    guard(False, body)


@app.command("hpa")
def manifests_hpa(
    deployment: Annotated[str, typer.Argument(help="The Deployment to scale.")],
    namespace: ManifestNamespace = "devtrip",
    min_replicas: Annotated[int, typer.Option("--min", min=1)] = 2,
    max_replicas: Annotated[int, typer.Option("--max", min=1)] = 10,
    cpu: Annotated[int, typer.Option(help="CPU target, % of requests.", min=1)] = 70,
    memory: Annotated[int, typer.Option(help="Memory target, % of requests.", min=1)] = 80,
) -> None:
    """A plain autoscaling/v2 HPA on CPU and memory, for teams that prefer the HPA itself."""

    def body() -> int:
        from devtrip_scale.scaling import manifests as m

        if min_replicas > max_replicas:
            raise ConfigError(f"--min {min_replicas} is above --max {max_replicas}")
        print(m.dump([m.hpa(deployment, namespace, min_replicas=min_replicas,
                            max_replicas=max_replicas, cpu=cpu, memory=memory)]), end="")
        return 0

    guard(False, body)


class RulesFormat(StrEnum):
    """How `manifests prometheus-rules` prints the rules."""

    rules = "rules"
    prometheusrule = "prometheusrule"


@app.command("prometheus-rules")
def manifests_prometheus_rules(
    format_: Annotated[RulesFormat, typer.Option(
        "--format", help="rules: a Prometheus rule file; prometheusrule: a Prometheus "
        "Operator PrometheusRule object.")] = RulesFormat.rules,
    namespace: Annotated[str, typer.Option(
        "--namespace", "-n", help="With --format prometheusrule: its namespace.")] = "monitoring",
) -> None:
    """Recording rules the configs use, and alerts: not running, capacity exhausted, held.

    Example: devscale manifests prometheus-rules --format prometheusrule -n monitoring
    """
    from devtrip_scale.scaling import manifests as m

    if format_ is RulesFormat.prometheusrule:
        print(m.dump([m.prometheus_rule(namespace)]), end="")
    else:
        print(m.dump([m.prometheus_rules()]), end="")


@app.command("grafana-dashboard")
def manifests_grafana_dashboard() -> None:
    """A Grafana dashboard: utilisation, users, RPS, p95, replicas and scaling events."""
    from devtrip_scale.scaling import manifests as m

    print(json.dumps(m.grafana_dashboard(), indent=2))


@app.command("workers")
def manifests_workers(
    config: WorkersConfigOption = Path("workers.yaml"),
    image: ImageOption = IMAGE,
    replicas: Annotated[int, typer.Option(min=1, help="Consumers sharing the stream.")] = 2,
) -> None:
    """`devscale workers serve` as a Deployment, its config as a ConfigMap, and a Role with
    exactly the verbs it uses on pods, pods/log and events; with api.plaintext_listen, a
    NetworkPolicy admitting only the CI server's pods to the plaintext port."""

    def body() -> int:
        from devtrip_scale.scaling import manifests as m
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.manifests import objects

        settings = load_workers_config(config)
        print(m.dump(objects(settings.namespace, config.read_text(encoding="utf-8"), image,
                             replicas, api=settings.api)), end="")
        return 0

    guard(False, body)
