"""`devscale simulate`: replay recorded load through the policy `check` uses."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devtrip_scale.cli._common import (
    ConfigOption,
    DebugOption,
    DurationMetavar,
    Output,
    OutputOption,
    err,
    example,
    guard,
    json_failure,
    load,
    out,
    parse_duration,
    print_json,
)
from devtrip_scale.core.errors import ConfigError

if TYPE_CHECKING:
    from devtrip_scale.scaling.config import Settings
    from devtrip_scale.scaling.replay.recording import Recording

EPILOG = example("devscale simulate -c devscale.yaml --csv load.csv --compare other.yaml "
                 "--plot day.png")


def simulate(
    config: ConfigOption = Path("devscale.yaml"),
    csv: Annotated[Path | None, typer.Option(
        "--csv", help="Recorded load: timestamp[,deployment][,replicas],<metric>… per row.",
        dir_okay=False, metavar="<file>")] = None,
    from_prometheus: Annotated[bool, typer.Option(
        "--from-prometheus", help="Read the load with range queries of the config's own "
        "metric queries (one per metric).")] = False,
    since: Annotated[str, typer.Option(help="With --from-prometheus: how far back.",
                                       metavar=DurationMetavar)] = "1d",
    step: Annotated[str, typer.Option(help="With --from-prometheus: the resolution.",
                                      metavar=DurationMetavar)] = "30s",
    interval: Annotated[str, typer.Option(
        help="How often the check runs: 2m from cron, the loop's --interval, …",
        metavar=DurationMetavar)] = "2m",
    ready_delay: Annotated[str, typer.Option(
        "--ready-delay", help="Time a new pod takes to become ready.",
        metavar=DurationMetavar)] = "0s",
    start_replicas: Annotated[int | None, typer.Option(
        "--start-replicas", min=0, help="Replicas at the start (default: the recording's, "
        "else minReplicas).", metavar="<replicas>")] = None,
    deployment: Annotated[str | None, typer.Option(
        "--deployment", "-d", help="Whose load a CSV without a deployment column is; with one, "
        "only this Deployment.", metavar="<name>")] = None,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="A second config, run on the same load and shown beside the first.",
        dir_okay=False, metavar="<file>")] = None,
    max_gap: Annotated[str, typer.Option(
        "--max-gap", help="A longer hole between samples is a gap: listed, replayed without "
        "readings and left out of the figures.", metavar=DurationMetavar)] = "5m",
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write a chart of the replicas the load asks for against each config's "
        "replicas (.png or .svg).", metavar="<file>")] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="A fleet config: the policy to replay (needed when it has several).",
        metavar="<name>")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="A fleet config with --from-prometheus: the namespace whose "
        "load to read.", metavar="<namespace>")] = None,
    output: OutputOption = Output.table,
    debug: DebugOption = False,
) -> None:
    """Replay recorded load through the same policy as `check`: replicas, cost, fit.

    A fleet config replays one of its policies (`--policy`), as a Deployment that joined it
    without overrides would be scaled."""

    def body() -> int:
        from devtrip_scale.scaling.replay import simreport
        from devtrip_scale.scaling.replay.simulate import Options
        from devtrip_scale.scaling.replay.simulate import simulate as replay

        if (csv is None) == (not from_prometheus):
            raise ConfigError("give exactly one of --csv FILE or --from-prometheus")
        every = parse_duration(interval, "--interval")  # flags first: before any work
        parse_duration(since, "--since")
        parse_duration(step, "--step")
        ready = _zero_or(ready_delay)
        gap = parse_duration(max_gap, "--max-gap")
        if plot is not None:
            _check_plot_path(plot)
        settings = _one_policy(load(config), config, policy, namespace, from_prometheus)
        configs = [(config.name, settings)]
        if compare is not None:
            other = _one_policy(load(compare), compare, policy, namespace, from_prometheus)
            if [m.name for m in other.metrics] != [m.name for m in settings.metrics]:
                raise ConfigError(f"--compare {compare}: its metrics must be the same as "
                                  f"{config}'s to replay the same load")
            configs.append((compare.name if compare.name != config.name else str(compare),
                            other))
        recording = _recording(settings, csv, deployment, since, step)
        options = Options(every, ready, start_replicas, max_gap=gap)
        runs = [(label, replay(recording, s, options)) for label, s in configs]
        if output is Output.json:
            print_json({**simreport.to_dict(runs), "exitCode": 0, "error": None})
        else:
            screen = out()
            screen.print(simreport.summary(runs))
            screen.print(simreport.timelines(runs))
        if plot is not None:
            simreport.plot(runs, plot)
            err.print(f"wrote {plot}")
        return 0

    guard(debug, body, json_failure(lambda: {"configs": []}) if output is Output.json
          else None)


def _one_policy(settings: Settings, path: Path, policy: str | None, namespace: str | None,
                from_prometheus: bool) -> Settings:
    """A classic config as it is; a fleet config's `--policy` as a one-namespace config."""
    if not settings.is_fleet:
        return settings
    names = sorted(settings.policies or {})
    if policy is None and len(names) != 1:
        raise ConfigError(f"{path} is a fleet config with the policies {', '.join(names)}: "
                          "say which to replay with --policy NAME")
    chosen = policy or names[0]
    if chosen not in names:
        raise ConfigError(f"--policy {chosen}: {path} has no such policy (it has "
                          f"{', '.join(names)})")
    if from_prometheus and namespace is None:
        raise ConfigError("a fleet config with --from-prometheus needs -n NAMESPACE: whose "
                          "load to read")
    return settings.for_policy(chosen, namespace)


def _zero_or(text: str) -> timedelta:
    return timedelta(0) if text.strip() in ("0", "0s") else parse_duration(text, "--ready-delay")


def _check_plot_path(path: Path) -> None:
    """Refuse a --plot file that cannot be written, before the replay rather than after it."""
    import importlib.util

    if path.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png or .svg")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"--plot {path}: the directory {folder} does not exist")
    if path.is_dir() or not os.access(folder, os.W_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--plot {path}: cannot write there")
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--plot needs matplotlib: pip install 'devtrip-scale[plot]'")


def _recording(settings: Settings, csv: Path | None, deployment: str | None, since: str,
               step: str) -> Recording:
    from devtrip_scale.scaling.ports import MetricQuery
    from devtrip_scale.scaling.reconcile import metric_queries
    from devtrip_scale.scaling.replay.recording import from_matrix, load_csv
    from devtrip_scale.scaling.sources.prometheus import PrometheusSource

    names = [m.name for m in settings.metrics]
    if csv is not None:
        recording = load_csv(csv, names, deployment)
    else:
        if any(m.http for m in settings.metrics):
            raise ConfigError("--from-prometheus cannot replay http metrics; record them to CSV")
        end = datetime.now(UTC)
        start = end - parse_duration(since)
        resolution = parse_duration(step).total_seconds()
        source = PrometheusSource(settings.prometheus.url,
                                  timeout=settings.prometheus.timeout_seconds,
                                  token=settings.prometheus_token())
        try:
            matrices = {q.name: source.fetch_range(q, start, end, resolution)
                        for q in metric_queries(settings)}
            replicas = source.fetch_range(MetricQuery(
                "replicas", f'kube_deployment_spec_replicas{{namespace="{settings.namespace}"}}'),
                start, end, resolution)
        finally:
            source.close()
        named = [t.deployment for t in settings.targets if t.deployment]
        recording = from_matrix(matrices, replicas, names, named)
    if deployment is not None:
        recording.series = {k: v for k, v in recording.series.items() if k == deployment}
    if not recording.series:
        raise ConfigError("the recording holds no Deployment to replay"
                          + (f" named {deployment}" if deployment else ""))
    return recording
