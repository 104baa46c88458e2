"""The `devscale` command line: flags → config → adapters → reconcile → output and exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from devtrip_scale import IMAGE, __version__
from devtrip_scale.errors import ConfigError, DevscaleError, ExitCode, MetricsError
from devtrip_scale.ports import MetricQuery

if TYPE_CHECKING:
    from collections.abc import Sequence

    from devtrip_scale.config import Settings
    from devtrip_scale.notify import Notice, Notifier
    from devtrip_scale.notify.runs import MemoryStore, RunAlerts
    from devtrip_scale.ports import MetricsSource
    from devtrip_scale.reconcile import CheckReport
    from devtrip_scale.recording import Recording
    from devtrip_scale.trace import Trace

app = typer.Typer(
    help="Size Kubernetes Deployments to their Prometheus load with the HPA's algorithm.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
)
config_app = typer.Typer(help="Check, show or start a configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
notify_app = typer.Typer(help="Check the notification channels.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")
cron_app = typer.Typer(help="Run the check from this machine's crontab.", no_args_is_help=True)
app.add_typer(cron_app, name="cron")
manifests_app = typer.Typer(help="Print deployable files: CronJob with RBAC, HPA, Prometheus "
                            "rules, Grafana dashboard.", no_args_is_help=True)
app.add_typer(manifests_app, name="manifests")
workers_app = typer.Typer(help="Event-driven workers: scale requests on a Redis Stream become "
                          "worker pods.", no_args_is_help=True)
app.add_typer(workers_app, name="workers")

err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    """How `check` and `simulate` print their result."""

    table = "table"
    json = "json"

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="DEVSCALE_CONFIG", help="The YAML configuration file.",
                 dir_okay=False, metavar="<file>"),
]
NamespaceOption = Annotated[str | None, typer.Option(
    "--namespace", "-n", metavar="<namespace>",
    help="Namespace of the targets (overrides the config and $NAMESPACE).")]
KubeconfigOption = Annotated[str | None, typer.Option(
    "--kubeconfig", metavar="<file>", help="kubeconfig file (default: in-cluster, then "
    "$KUBECONFIG or ~/.kube/config).")]
ContextOption = Annotated[str | None, typer.Option(
    "--context", metavar="<name>", help="kubeconfig context to use (default: its current one).")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an unexpected error, print its traceback (also "
    "DEBUG=1).")]
OutputOption = Annotated[Output, typer.Option(
    "--output", "-o", help="table for people, json for machines (one document, also on "
    "errors).")]
DeploymentOption = Annotated[list[str] | None, typer.Option(
    "--deployment", "-d", metavar="<name>", help="Only this target Deployment (repeatable).")]
DurationMetavar = "<duration>"
# `-o json` documents carry this; README "JSON output" documents each version's fields.
JSON_SCHEMA_VERSION = 1
_root_debug = False  # `devscale --debug COMMAND`: set by the root callback on every invocation


def _example(command: str) -> str:
    """A command's `--help` epilog: one example, printed as written (`\\b`: not rewrapped)."""
    return f"\b\nExample:\n  {command}"


def _version(value: bool) -> None:
    if value:
        print(f"devscale {__version__}")
        raise typer.Exit()


@app.callback(epilog=_example("devscale config init devscale.yaml && devscale check -c "
              "devscale.yaml --dry-run"))
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Debug output for any command (also DEBUG=1): the "
        "traceback of an unexpected error.")] = False,
) -> None:
    """devscale reads load from Prometheus and sets Deployment replicas as the HPA would."""
    global _root_debug
    _root_debug = debug


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: the lease is released on the way out


def _debugging(flag: bool = False) -> bool:
    """--debug on the command or before it, or DEBUG=1 in the environment.

    $DEBUG is read here rather than as the options' envvar: a value click cannot read as a
    boolean (DEBUG=express:* of Node's debug module, say) must not make every command fail.
    """
    env = os.environ.get("DEBUG", "").strip().lower()
    return flag or _root_debug or env in ("1", "true", "yes", "on")


def _guard(debug: bool, body: Callable[[], int],
           on_error: Callable[[ExitCode, str], None] | None = None) -> None:
    """Run a command body; map devscale's errors to their exit codes, hide tracebacks.

    `on_error` (given for `-o json`) writes the failure's document to stdout.
    """
    debug = _debugging(debug)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = body()
    except DevscaleError as e:
        err.print(f"devscale: {e}", style="red", markup=False)
        if debug:
            err.print(traceback.format_exc(), markup=False)
        if on_error is not None:
            on_error(e.exit_code, str(e))
        raise typer.Exit(int(e.exit_code)) from None
    except KeyboardInterrupt:
        err.print("devscale: interrupted", style="red")
        if on_error is not None:
            on_error(ExitCode.INTERRUPTED, "interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as e:  # the last line of defence: one line, no traceback unless --debug
        message = f"internal error: {type(e).__name__}: {e}"
        err.print(f"devscale: {message}", style="red", markup=False)
        if debug:
            err.print(traceback.format_exc(), markup=False)
        else:
            err.print("run again with --debug for the traceback", style="dim")
        if on_error is not None:
            on_error(ExitCode.INTERNAL, message)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None
    raise typer.Exit(code)


def _print_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout, `schemaVersion` first."""
    print(json.dumps({"schemaVersion": JSON_SCHEMA_VERSION, **document}, indent=2))


def _json_failure(context: Callable[[], dict[str, Any]]) -> Callable[[ExitCode, str], None]:
    """An `on_error` for `_guard`: the failure as the command's JSON document, with the fields
    `context()` gives at that moment."""

    def write(code: ExitCode, message: str) -> None:
        _print_json({**context(), "exitCode": int(code),
                     "error": {"kind": code.name.lower(), "message": message}})

    return write


def _metrics_source(settings: Settings, trace: Trace | None = None) -> MetricsSource:
    """Prometheus for PromQL metrics, the JSON reader for URL metrics, sharing the timeout;
    all queried at once under one deadline (the timeout and a second's grace)."""
    from devtrip_scale.sources import RoutedSource
    from devtrip_scale.sources.http_json import HttpJsonSource
    from devtrip_scale.sources.prometheus import PrometheusSource

    timeout = settings.prometheus.timeout_seconds
    return RoutedSource(
        PrometheusSource(settings.prometheus.url, timeout=timeout,
                         token=settings.prometheus_token(), trace=trace),
        HttpJsonSource(timeout=timeout, trace=trace),
        deadline_seconds=timeout + 1,
    )


def _pass(settings: Settings, api: Any, source: MetricsSource, trace: Trace, *,
          notifiers: Sequence[Notifier], now: datetime, dry_run: bool = False,
          only: Sequence[str] = (), recovered: Sequence[Notice] = (),
          writable: Callable[[], str | None] = lambda: None) -> CheckReport:
    """One read → decide → act → tell pass over the cluster's adapters (check and run)."""
    from devtrip_scale.kube.deployments import DeploymentTarget
    from devtrip_scale.kube.events import EventRecorder
    from devtrip_scale.kube.history import ConfigMapHistory
    from devtrip_scale.reconcile import run_check

    ns = settings.namespace
    return run_check(
        settings, source, DeploymentTarget(api, ns, trace),
        ConfigMapHistory(api, ns, settings.history_configmap, trace),
        now, dry_run=dry_run, only=tuple(only), trace=trace,
        events=EventRecorder(api, ns, trace), notifiers=notifiers, recovered=recovered,
        writable=writable)


def _run_alerts(settings: Settings, notifiers: Sequence[Notifier],
                store: MemoryStore) -> RunAlerts:
    from devtrip_scale.notify.runs import RunAlerts

    return RunAlerts(store, settings.namespace, notifiers,
                     quiet=timedelta(minutes=settings.notify.quiet_minutes),
                     lock_runs=settings.notify.lock_contention_runs)


def _alerting(alerts: RunAlerts | None, now: datetime,
              work: Callable[[Sequence[Notice]], CheckReport]) -> CheckReport:
    """Do a pass; tell a failure that leaves no report, and its recovery in the next report.

    The failure is told after `work` has freed the lock; the error still reaches _guard.
    """
    if alerts is None:
        return work(())
    try:
        report = work(alerts.recovered(now))
    except Exception as e:
        _tell_failure(alerts, e, now)
        raise
    if report.history_error is not None:
        return report   # the run's recoveries were not sent: keep the conditions open
    if problem := alerts.completed(now):
        report.warnings.append(problem)
    return report


def _tell_failure(alerts: RunAlerts, error: BaseException, now: datetime) -> None:
    """Notify a run that failed before its report; stderr says what was told or why not."""
    told = alerts.failed(error, now)
    for notice in told.sent:
        err.print(f"devscale: notified: {notice.title}", markup=False)
    for failure in told.failures:
        err.print(f"devscale: notification failed: {failure}", style="red", markup=False)
    if told.problem:
        err.print(f"devscale: {told.problem}", style="yellow", markup=False)


def _lease_seconds(text: str) -> int:
    seconds = int(parse_duration(text, "--lease-duration").total_seconds())
    if seconds < 6:
        raise ConfigError(f"--lease-duration {text}: at least 6s (it is renewed every third "
                          "of it)")
    return seconds


def _out() -> Console:
    """Standard output: a terminal's width; otherwise (cron log, CI, a pipe) render.WIDE columns
    at most, each line only as long as its content."""
    from devtrip_scale.render import console

    return console(sys.stdout)


def _load(path: Path, namespace: str | None = None) -> Settings:
    from devtrip_scale.config import load_config

    return load_config(path, overrides={"namespace": namespace} if namespace else None)


@app.command(epilog=_example("devscale check -c devscale.yaml --dry-run -d api"))
def check(
    config: ConfigOption = Path("devscale.yaml"),
    namespace: NamespaceOption = None,
    deployment: DeploymentOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Compute and show the decisions; change nothing.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Add the PromQL, raw readings, timings and API calls "
        "(also DEBUG=1).")] = False,
    output: OutputOption = Output.table,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    lease_duration: Annotated[str, typer.Option(
        "--lease-duration", metavar=DurationMetavar, help="How long the namespace's Lease "
        "lasts unrenewed; it is renewed every third of that while the pass runs.")] = "60s",
    now: Annotated[datetime | None, typer.Option(
        "--now", hidden=True, formats=["%Y-%m-%dT%H:%M:%S%z"],
        help="Decide as if it were this time (for replays and tests).")] = None,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", metavar="URL", envvar="DEVSCALE_PUSHGATEWAY",
        help="Push the outcome to this Prometheus Pushgateway for the alerts and dashboard "
        "(not on --dry-run; a failed push is a warning).")] = None,
) -> None:
    """Run one pass: read the load, decide, scale, explain.

    Exit codes: 0 success, 2 config error, 3 metrics unavailable, 4 Kubernetes API error,
    5 partial failure (some Deployments failed), 6 another run holds the lock, 7 a notification
    failed (the scaling stands), 1 internal error.
    """

    def body() -> int:
        from devtrip_scale import render
        from devtrip_scale.kube import connect
        from devtrip_scale.kube.lease import LeaseLock
        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.notify.runs import MemoryFile
        from devtrip_scale.trace import Trace

        settings = _load(config, namespace)
        loaded.append(settings)
        debug_on = _debugging(debug)
        notifiers = notifiers_from(settings)
        moment = now or datetime.now(UTC)
        alerts = None if dry_run or not notifiers else _run_alerts(
            settings, notifiers, MemoryFile.for_runner(settings.namespace, config))
        trace = Trace()

        def locked_pass(recovered: Sequence[Notice]) -> CheckReport:
            api = connect(kubeconfig, context)
            source = _metrics_source(settings, trace)
            lock = LeaseLock(api, settings.namespace, trace=trace,
                             duration_seconds=_lease_seconds(lease_duration))
            try:
                if dry_run:  # a dry run writes nothing: it needs no lock
                    return _pass(settings, api, source, trace, notifiers=notifiers, now=moment,
                                 dry_run=True, only=deployment or ())
                lock.acquire()   # one writer at a time, renewed while the pass runs
                with lock.kept() as writable:
                    return _pass(settings, api, source, trace, notifiers=notifiers, now=moment,
                                 only=deployment or (), recovered=recovered,
                                 writable=writable)
            finally:
                lock.release()
                source.close()
                api.close()

        report = _alerting(alerts, moment, locked_pass)
        if pushgateway and not dry_run:
            from devtrip_scale.pushgateway import push

            if problem := push(pushgateway, report):
                report.warnings.append(problem)
        if output is Output.json:
            _print_json({**json.loads(render.to_json(report, debug=debug_on)), "error": None})
        else:
            _out().print(render.table(report))
        if debug_on:
            err.print(render.debug(report), markup=False, soft_wrap=True)
        return int(report.exit_code)

    loaded: list[Settings] = []
    started = (now or datetime.now(UTC)).isoformat()
    _guard(debug, body, _json_failure(lambda: {
        "namespace": loaded[0].namespace if loaded else None, "dryRun": dry_run,
        "time": started, "deployments": [], "metricErrors": {}, "warnings": [], "queries": [],
        "notified": [], "notifyFailures": []}) if output is Output.json else None)


@config_app.command("validate", epilog=_example("devscale config validate -c devscale.yaml "
                    "--online"))
def config_validate(
    config: ConfigOption = Path("devscale.yaml"),
    online: Annotated[bool, typer.Option(
        "--online", help="Also run every metric's query on Prometheus to check it is accepted "
        "and returns data.")] = False,
    output: OutputOption = Output.table,
    debug: DebugOption = False,
) -> None:
    """Check a config file; errors name the file, line and field.

    Exit codes: 0 valid, 2 config error, 3 Prometheus unreachable (with --online).
    """

    def body() -> int:
        settings = _load(config)
        warnings = _validate_online(config, settings) if online else []
        if output is Output.json:
            _print_json({"config": str(config), "valid": True, "online": online,
                         "namespace": settings.namespace, "targets": len(settings.targets),
                         "metrics": len(settings.metrics), "warnings": warnings,
                         "exitCode": 0, "error": None})
        else:
            print(f"{config}: valid ({len(settings.targets)} target(s), "
                  f"{len(settings.metrics)} metric(s), namespace {settings.namespace})"
                  + (", every query accepted by Prometheus" if online else ""))
        return 0

    _guard(debug, body, _json_failure(lambda: {
        "config": str(config), "valid": False, "online": online}) if output is Output.json
        else None)


def _validate_online(path: Path, settings: Settings) -> list[str]:
    """Run each metric's query; raise ConfigError for refused ones, MetricsError when
    Prometheus (or an http endpoint) cannot be reached. Returns the warnings it printed."""
    from devtrip_scale.config import field_line
    from devtrip_scale.reconcile import metric_queries

    source = _metrics_source(settings)
    try:
        results = source.fetch(metric_queries(settings))
    finally:
        source.close()
    problems, unreachable, warnings = [], [], []
    for i, (metric, result) in enumerate(zip(settings.metrics, results, strict=True)):
        if result.error is None:
            continue
        key = "http" if metric.http else ("preset" if metric.preset else "query")
        where = f"{path}:{field_line(path, ('metrics', i, key))}: metrics[{i}].{key}"
        if result.error.startswith("the query returned no series"):
            warnings.append(f"{where}: accepted, but no data yet ({result.error})")
            err.print(f"warning: {warnings[-1]}", style="yellow", markup=False)
        elif _unreachable(result.error):
            unreachable.append(f"  metrics[{i}] {metric.name}: {result.error}")
        else:
            problems.append(f"  {where}: {result.error}")
    if problems:
        raise ConfigError(f"{path}: {len(problems)} metric(s) failed on "
                          f"{settings.prometheus.url}\n" + "\n".join(problems))
    if unreachable:
        raise MetricsError(f"{path}: {len(unreachable)} metric(s) could not be checked: their "
                           "source did not answer (the config itself may be fine)\n"
                           + "\n".join(unreachable))
    return warnings


def _unreachable(error: str) -> bool:
    """A metric error that says the source could not be reached, not that it refused the query
    (the wording of sources/prometheus.py and sources/http_json.py)."""
    return (error.startswith(("cannot connect to", "cannot reach"))
            or " did not answer within " in error)


@config_app.command("show", epilog=_example("NAMESPACE=staging devscale config show -c "
                    "devscale.yaml"))
def config_show(
    config: ConfigOption = Path("devscale.yaml"),
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="table: YAML for people; json: one document for machines, "
        "also on errors.")] = Output.table,
    debug: DebugOption = False,
) -> None:
    """Print the effective config (file + environment, every default filled in) as YAML."""

    def body() -> int:
        import yaml

        from devtrip_scale.config import effective

        data = effective(_load(config))
        if output is Output.json:
            _print_json({"config": str(config), "settings": data, "exitCode": 0, "error": None})
        else:
            print(yaml.safe_dump(data, sort_keys=False), end="")
        return 0

    _guard(debug, body, _json_failure(lambda: {"config": str(config), "settings": None})
           if output is Output.json else None)


@config_app.command("init", epilog=_example("devscale config init devscale.yaml"))
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter config.",
                                         metavar="[<file>]")] = Path("devscale.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOption = False,
) -> None:
    """Write a commented starter config (the load-based example)."""

    def body() -> int:
        import shlex
        from importlib.resources import files

        if path.exists() and not force:
            raise ConfigError(f"{path} exists; pass --force to overwrite it")
        starter = files("devtrip_scale").joinpath("starter.yaml").read_text("utf-8")
        # The starter's first lines tell how to validate it: name the file it was written to.
        starter = starter.replace("-c devscale.yaml", f"-c {shlex.quote(str(path))}", 1)
        try:
            path.write_text(starter, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot write the starter config: "
                              f"{e.strerror or e}") from None
        print(f"wrote {path}; edit it, then run: devscale config validate -c {path}")
        return 0

    _guard(debug, body)


@app.command(epilog=_example("devscale run -c devscale.yaml --interval 60s --listen "
             "127.0.0.1:8080"))
def run(
    config: ConfigOption = Path("devscale.yaml"),
    interval: Annotated[str, typer.Option(
        help="Time between passes: 30s, 2m, 1h.", metavar=DurationMetavar)] = "60s",
    lease_duration: Annotated[str | None, typer.Option(
        "--lease-duration", metavar=DurationMetavar,
        help="How long the leader's Lease lasts unrenewed (default: "
        "3 × interval, at least 15s); a follower takes over within it.")] = None,
    listen: Annotated[str, typer.Option(
        help="host:port of /healthz and /metrics.", metavar="<host:port>")] = "0.0.0.0:8080",
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Run the check on an interval inside the cluster: leader-elected, /healthz, /metrics.

    Exit codes: 0 stopped (Ctrl-C or SIGTERM), 2 config error, 4 Kubernetes API error,
    1 internal error.
    """

    def body() -> int:
        import threading

        from devtrip_scale.kube import connect
        from devtrip_scale.kube.lease import LeaseLock
        from devtrip_scale.loop import LoopState, Telemetry, run_loop, serve
        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.notify.runs import InProcessMemory
        from devtrip_scale.sources.cache import CachingSource
        from devtrip_scale.trace import Trace

        every = parse_duration(interval, "--interval").total_seconds()
        lease_seconds = (parse_duration(lease_duration, "--lease-duration").total_seconds()
                         if lease_duration else max(15.0, 3 * every))
        host, port = parse_listen(listen)
        settings = _load(config, namespace)
        notifiers = notifiers_from(settings)
        api = connect(kubeconfig, context)
        source = _metrics_source(settings)
        if settings.prometheus.cache_seconds:
            source = CachingSource(source, settings.prometheus.cache_seconds)

        alerts = _run_alerts(settings, notifiers, InProcessMemory()) if notifiers else None

        def check() -> CheckReport:
            moment = datetime.now(UTC)
            with lock.kept() as writable:   # renewed while the pass runs
                return _alerting(alerts, moment, lambda recovered: _pass(
                    settings, api, source, Trace(), notifiers=notifiers, now=moment,
                    recovered=recovered, writable=writable))

        lock = LeaseLock(api, settings.namespace, duration_seconds=int(lease_seconds))
        state, telemetry, stop = LoopState(), Telemetry(), threading.Event()
        try:
            server = serve(host, port, state, telemetry, 3 * every + 30)
        except OSError as e:
            source.close()
            api.close()
            raise ConfigError(f"--listen {listen}: cannot listen there: "
                              f"{e.strerror or e}") from None
        err.print(f"devscale run: every {every:g}s in namespace {settings.namespace}, "
                  f"/healthz and /metrics on {listen}, identity {lock.identity}",
                  markup=False)
        try:
            run_loop(settings, lock, check, interval=every, stop=stop, state=state,
                     telemetry=telemetry, say=lambda text: err.print(text, markup=False))
        except KeyboardInterrupt:
            err.print("devscale run: stopping", markup=False)
        finally:
            stop.set()
            lock.release()
            server.shutdown()
            source.close()
            api.close()
        return 0

    _guard(debug, body)


def parse_duration(text: str, option: str | None = None) -> timedelta:
    """`30s`, `2m`, `1h`, `7d` as a timedelta; `option` names the flag in the ConfigError a bad
    value raises (`run` and `simulate` share this parser). A bare number has no unit and is
    refused: seconds or minutes, the user says which."""
    import math

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    what = f"{option} {text!r}" if option else repr(text)
    if text.replace(".", "", 1).isdigit():
        raise ConfigError(f"{what} has no unit: write {text}s, {text}m or {text}h")
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise ConfigError(f"{what}: not a duration such as 30s, 2m, 1h or 7d") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what}: the duration must be positive, such as 30s or 2m")
    return timedelta(seconds=seconds)


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `:port` or `[::1]:port` as (host, port); a ConfigError names --listen."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {text!r}: not host:port such as 0.0.0.0:8080 or "
                          "127.0.0.1:9100 (the port 1-65535)")
    return host.strip("[]") or "0.0.0.0", int(port)


@app.command(epilog=_example("devscale simulate -c devscale.yaml --csv load.csv --compare "
             "other.yaml --plot day.png"))
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
    output: OutputOption = Output.table,
    debug: DebugOption = False,
) -> None:
    """Replay recorded load through the same policy as `check`: replicas, cost, fit."""

    def body() -> int:
        from devtrip_scale import simreport
        from devtrip_scale.simulate import Options
        from devtrip_scale.simulate import simulate as replay

        if (csv is None) == (not from_prometheus):
            raise ConfigError("give exactly one of --csv FILE or --from-prometheus")
        every = parse_duration(interval, "--interval")  # flags first: before any work
        parse_duration(since, "--since")
        parse_duration(step, "--step")
        ready = _zero_or(ready_delay)
        gap = parse_duration(max_gap, "--max-gap")
        if plot is not None:
            _check_plot_path(plot)
        settings = _load(config)
        configs = [(config.name, settings)]
        if compare is not None:
            other = _load(compare)
            if [m.name for m in other.metrics] != [m.name for m in settings.metrics]:
                raise ConfigError(f"--compare {compare}: its metrics must be the same as "
                                  f"{config}'s to replay the same load")
            configs.append((compare.name if compare.name != config.name else str(compare),
                            other))
        recording = _recording(settings, csv, deployment, since, step)
        options = Options(every, ready, start_replicas, max_gap=gap)
        runs = [(label, replay(recording, s, options)) for label, s in configs]
        if output is Output.json:
            _print_json({**simreport.to_dict(runs), "exitCode": 0, "error": None})
        else:
            out = _out()
            out.print(simreport.summary(runs))
            out.print(simreport.timelines(runs))
        if plot is not None:
            simreport.plot(runs, plot)
            err.print(f"wrote {plot}")
        return 0

    _guard(debug, body, _json_failure(lambda: {"configs": []}) if output is Output.json
           else None)


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
    from devtrip_scale.reconcile import metric_queries
    from devtrip_scale.recording import from_matrix, load_csv
    from devtrip_scale.sources.prometheus import PrometheusSource

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


@app.command(epilog=_example("devscale status -c devscale.yaml -d api -o json"))
def status(
    config: ConfigOption = Path("devscale.yaml"),
    namespace: NamespaceOption = None,
    deployment: DeploymentOption = None,
    output: OutputOption = Output.table,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Show each target as devscale last left it, read-only: targets, replicas, last decision
    and why, held-until, last scale (like `kubectl get hpa`)."""

    def body() -> int:
        from devtrip_scale import status as st
        from devtrip_scale.kube import connect

        settings = _load(config, namespace)
        api = connect(kubeconfig, context)
        try:
            report = st.collect(settings, api, datetime.now(UTC), deployment or ())
        finally:
            api.close()
        if output is Output.json:
            _print_json({**st.to_dict(report), "exitCode": int(report.exit_code),
                         "error": None})
        else:
            _out().print(st.table(report))
        return int(report.exit_code)

    _guard(debug, body, _json_failure(lambda: {"deployments": []})
           if output is Output.json else None)


UserOption = Annotated[str | None, typer.Option(
    "--user", "-u", help="Another user's crontab (root only).")]


@cron_app.command("install")
def cron_install(
    config: ConfigOption = Path("devscale.yaml"),
    every: Annotated[str, typer.Option(help="How often: 2m, 5m, 1h, …")] = "2m",
    schedule: Annotated[str | None, typer.Option(
        help="A cron schedule instead of --every, e.g. '*/2 8-20 * * 1-5'.")] = None,
    log: Annotated[Path | None, typer.Option(
        help="Where the output goes (default ~/.local/state/devscale/check.log).")] = None,
    user: UserOption = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", metavar="FILE", help="kubeconfig the entry uses (default: the first "
        "file of $KUBECONFIG, else ~/.kube/config, made absolute).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", metavar="NAME", help="Context the entry uses (default: the kubeconfig's "
        "current-context now).")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Namespace the entry scales (default: the config's, with "
        "$NAMESPACE applied, now).")] = None,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", metavar="URL", envvar="DEVSCALE_PUSHGATEWAY",
        help="Each run pushes its outcome to this Prometheus Pushgateway.")] = None,
) -> None:
    """Add (or update) one crontab entry; running it twice leaves one entry.

    The entry pins the kubeconfig, context and namespace in effect now, so a later
    `kubectl config use-context` does not move it.

    Example: devscale cron install -c devscale.yaml --every 2m
    """

    def body() -> int:
        from devtrip_scale import cron

        settings = _load(config, namespace)
        when = cron.validate_schedule(schedule) if schedule else cron.every_to_schedule(every)
        target = cron.resolve_target(settings.namespace, kubeconfig, context, pushgateway)
        log_file = log or Path.home() / ".local" / "state" / "devscale" / "check.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        line = cron.entry(when, config, log_file, target)
        changed = cron.install(line, config, user)
        print(("installed" if changed else "already installed") + f":\n{cron.summary(line)}")
        return 0

    _guard(False, body)


@cron_app.command("uninstall")
def cron_uninstall(
    config: ConfigOption = Path("devscale.yaml"),
    all_entries: Annotated[bool, typer.Option("--all", help="Every devscale entry.")] = False,
    user: UserOption = None,
) -> None:
    """Remove the crontab entry of this config (or all of devscale's)."""

    def body() -> int:
        from devtrip_scale import cron

        removed = cron.uninstall(None if all_entries else config, user)
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")
        return 0

    _guard(False, body)


@cron_app.command("show")
def cron_show(
    user: UserOption = None,
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="table for people, json for machines.")] = Output.table,
) -> None:
    """List devscale's crontab entries, each with the cluster, context and namespace it acts on.

    Example: devscale cron show -o json
    """

    def body() -> int:
        from devtrip_scale import cron

        lines = cron.entries(user)
        if output is Output.json:
            print(json.dumps({"schemaVersion": 1,
                              "entries": [cron.describe(line) for line in lines]}, indent=2))
        else:
            print("\n".join(cron.summary(line) for line in lines) if lines
                  else "no devscale entry in the crontab")
        return 0

    _guard(False, body)


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
    from devtrip_scale import manifests as m

    ns, settings = _deploy_target(config, namespace, without_config)
    history = settings.history_configmap if settings else m.HISTORY
    secrets = m.secret_env(settings) if settings else m.DEFAULT_SECRET_ENV
    objects = [*m.rbac(ns, history), *m.state(ns, history)]
    if config is not None:
        objects.append(m.config_map(ns, config.read_text(encoding="utf-8")))
    return ns, secrets, objects


def _deploy_target(config: Path | None, namespace: str | None, without_config: bool
                   ) -> tuple[str, Settings | None]:
    """The namespace a printed set scales, and the config it ships; refuses a set that would
    not start (no config) or would act elsewhere than its RBAC (namespace mismatch)."""
    from devtrip_scale.config import load_config

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
    from devtrip_scale import manifests as m

    print(m.dump(objects), end="")
    for note in notes:
        err.print(f"devscale: notice: {note}", style="yellow", markup=False)


@manifests_app.command("cronjob")
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
        from devtrip_scale import manifests as m
        from devtrip_scale.cron import validate_schedule
        from devtrip_scale.pushgateway import PUSHGATEWAY_ENV, redact

        validate_schedule(schedule)
        ns, secrets, objects = _shared_set(config, namespace, without_config)
        if pushgateway and redact(pushgateway) != pushgateway:  # credentials go in the Secret
            secrets, pushgateway_url = (*secrets, (PUSHGATEWAY_ENV, "pushgateway-url")), None
        else:
            pushgateway_url = pushgateway
        objects.append(m.cronjob(ns, image, schedule, pin_namespace=True, secret_env=secrets,
                                 pushgateway=pushgateway_url))
        _print_set(objects, m.not_emitted(ns, secrets, config=config is not None))
        return 0

    _guard(False, body)


@manifests_app.command("loop")
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
        from devtrip_scale import manifests as m

        parse_duration(interval, "--interval")
        ns, secrets, objects = _shared_set(config, namespace, without_config)
        objects.append(m.loop_deployment(ns, image, interval, pin_namespace=True,
                                         secret_env=secrets))
        _print_set(objects, m.not_emitted(ns, secrets, config=config is not None))
        return 0

    _guard(False, body)


@manifests_app.command("hpa")
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
        from devtrip_scale import manifests as m

        if min_replicas > max_replicas:
            raise ConfigError(f"--min {min_replicas} is above --max {max_replicas}")
        print(m.dump([m.hpa(deployment, namespace, min_replicas=min_replicas,
                            max_replicas=max_replicas, cpu=cpu, memory=memory)]), end="")
        return 0

    _guard(False, body)


class RulesFormat(StrEnum):
    """How `manifests prometheus-rules` prints the rules."""

    rules = "rules"
    prometheusrule = "prometheusrule"


@manifests_app.command("prometheus-rules")
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
    from devtrip_scale import manifests as m

    if format_ is RulesFormat.prometheusrule:
        print(m.dump([m.prometheus_rule(namespace)]), end="")
    else:
        print(m.dump([m.prometheus_rules()]), end="")


@manifests_app.command("grafana-dashboard")
def manifests_grafana_dashboard() -> None:
    """A Grafana dashboard: utilisation, users, RPS, p95, replicas and scaling events."""
    from devtrip_scale import manifests as m

    print(json.dumps(m.grafana_dashboard(), indent=2))


@notify_app.command("test", epilog=_example(
    "SLACK_WEBHOOK=https://hooks.slack.com/services/… devscale notify test -c devscale.yaml"))
def notify_test(config: ConfigOption = Path("devscale.yaml"),
                debug: DebugOption = False) -> None:
    """Send a sample message to every configured channel and say what happened."""

    def body() -> int:
        from devtrip_scale.notify import Notice
        from devtrip_scale.notify.channels import notifiers_from

        settings = _load(config)
        notifiers = notifiers_from(settings)
        if not notifiers:
            raise ConfigError(f"{config}: no channel is configured: set "
                              f"${settings.notify.slack.webhook_env} for Slack, or add "
                              "notify.email with recipients (or $EMAIL_RECIPIENTS)")
        sample = Notice("test", "info", "test", "devscale test message",
                        f"sent by `devscale notify test` for namespace {settings.namespace}")
        failed = 0
        for notifier in notifiers:
            try:
                notifier.send(settings.namespace, [sample])
                print(f"{notifier.name}: sent")
            except DevscaleError as e:
                failed += 1
                err.print(f"{notifier.name}: failed: {e}", style="red", markup=False)
        return int(ExitCode.NOTIFY) if failed else 0

    _guard(debug, body)


# ---------------------------------------------------------------- workers (issue 15)

WorkersConfigOption = Annotated[Path, typer.Option(
    "--config", "-c", envvar="DEVSCALE_WORKERS_CONFIG", help="The workers YAML configuration.",
    dir_okay=False, metavar="<file>")]


def _run_async(main: Callable[[], Any]) -> Any:
    """The one place that runs an event loop for a command: `main()` is a coroutine function."""
    import asyncio

    return asyncio.run(main())


@workers_app.command("serve", epilog=_example(
    "devscale workers serve -c workers.yaml --listen 127.0.0.1:8080"))
def workers_serve(
    config: WorkersConfigOption = Path("workers.yaml"),
    listen: Annotated[str, typer.Option(
        help="host:port of /healthz and /metrics.", metavar="<host:port>")] = "0.0.0.0:8080",
    consumer: Annotated[str | None, typer.Option(
        help="This replica's consumer name in the group (default: the config's, else the "
        "host name). Keep it stable across restarts to re-read its own pending entries.")
    ] = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Read scale requests from the stream and run them as worker pods, until SIGTERM.

    Exit codes: 0 stopped, 2 config error, 4 Kubernetes API error, 1 internal error.
    """

    def body() -> int:
        import asyncio
        import logging

        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.intake import connect as redis_connect
        from devtrip_scale.workers.kube import AsyncKube
        from devtrip_scale.workers.server import WorkerServer, serve_http

        host, port = parse_listen(listen)
        settings = load_workers_config(config)
        notifiers = notifiers_from(settings.notify)
        password = settings.redis_password()
        logging.basicConfig(level=logging.WARNING, format="%(message)s")

        def say(text: str) -> None:
            err.print(f"{datetime.now(UTC):%H:%M:%S} {text}", markup=False)

        async def main() -> int:
            import signal as signals

            kube = AsyncKube.connect(kubeconfig, context, settings.namespace,
                                     writes_per_second=settings.limits.api_writes_per_second,
                                     write_burst=settings.limits.api_write_burst)
            redis = redis_connect(settings.redis, password)
            server = WorkerServer(settings, kube, redis, consumer=consumer,
                                  notifiers=notifiers, say=say)
            loop = asyncio.get_running_loop()
            for sig in (signals.SIGTERM, signals.SIGINT):
                loop.add_signal_handler(sig, server.stop.set)
            try:
                http = await serve_http(server, host, port)
            except OSError as e:
                await kube.aclose()
                await redis.aclose()
                raise ConfigError(f"--listen {listen}: cannot listen there: "
                                  f"{e.strerror or e}") from None
            say(f"devscale workers: namespace {settings.namespace}, consumer {server.consumer}, "
                f"max {settings.limits.max_workers} workers, /healthz and /metrics on {listen}")
            try:
                await server.run()
            finally:
                http.close()
                await kube.aclose()
                await redis.aclose()
            return 0

        return int(_run_async(main))

    _guard(debug, body)


@workers_app.command("submit", epilog=_example(
    "devscale workers submit -c workers.yaml --pod-count 3 --task-id build-42 --meta "
    "branch=main"))
def workers_submit(
    config: WorkersConfigOption = Path("workers.yaml"),
    pod_count: Annotated[int | None, typer.Option(
        "--pod-count", min=1, help="scale_up: how many worker pods.")] = None,
    task_id: Annotated[str | None, typer.Option(
        "--task-id", help="The task (default for scale_up: the entry's ID).")] = None,
    cancel: Annotated[bool, typer.Option(
        "--cancel", help="scale_down: cancel --task-id (pending pods, then running ones).")
    ] = False,
    meta: Annotated[list[str] | None, typer.Option(
        "--meta", metavar="<key=value>", help="Metadata for the pods (env and labels); "
        "repeatable.")] = None,
) -> None:
    """Put a scale_up (or, with --cancel, a scale_down) request on the stream; print its ID."""

    def body() -> int:
        from redis import Redis
        from redis.exceptions import RedisError

        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, encode, parse

        settings = load_workers_config(config)
        pairs = []
        for item in meta or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--meta {item!r}: write key=value")
            pairs.append((key, value))
        if cancel:
            if task_id is None or pod_count is not None or pairs:
                raise ConfigError("--cancel takes --task-id only")
            request: ScaleUp | ScaleDown = ScaleDown("-", task_id)
        else:
            if pod_count is None:
                raise ConfigError("give --pod-count (or --cancel --task-id TASK)")
            request = ScaleUp("-", task_id or "-", pod_count, tuple(sorted(pairs)))
        fields = encode(request)
        if task_id is None:
            fields.pop("task_id", None)
        checked = parse("0-0", fields, settings.limits.pod_count_limit)
        if isinstance(checked, Rejected):
            raise ConfigError(f"the request would be dead-lettered: {checked.reason}")
        client = Redis.from_url(settings.redis.url, password=settings.redis_password(),
                                decode_responses=True, socket_timeout=10,
                                socket_connect_timeout=5)
        try:
            entry = client.xadd(settings.redis.stream, dict(fields))  # type: ignore[arg-type]
        except RedisError as e:
            raise DevscaleError(f"cannot add to {settings.redis.stream} at "
                                f"{settings.redis.safe_url()}: {e}") from None
        finally:
            client.close()
        print(entry)
        return 0

    _guard(False, body)


@workers_app.command("status", epilog=_example("devscale workers status -c workers.yaml "
                                               "build-42"))
def workers_status(
    task: Annotated[str | None, typer.Argument(help="Only this task.")] = None,
    config: WorkersConfigOption = Path("workers.yaml"),
    output: OutputOption = Output.table,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Tasks and their worker pods, from the cluster (read-only)."""

    def body() -> int:
        from kubernetes import client

        from devtrip_scale.kube import TIMEOUT, connect, request
        from devtrip_scale.trace import Trace
        from devtrip_scale.workers import SELECTOR, TASK_LABEL
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.status import tasks
        from devtrip_scale.workers.tasks import task_key

        settings = load_workers_config(config)
        ns = settings.namespace
        selector = SELECTOR + (f",{TASK_LABEL}={task_key(task)}" if task else "")
        api = connect(kubeconfig, context)
        try:
            raw = request(Trace(), "list", "pods", ns, None, lambda: client.CoreV1Api(
                api).list_namespaced_pod(ns, label_selector=selector, _preload_content=False,
                                         _request_timeout=TIMEOUT).data)
        finally:
            api.close()
        found = tasks(json.loads(raw).get("items") or [])
        if output is Output.json:
            _print_json({"namespace": ns, "tasks": found})
            return 0
        if not found:
            print(f"no worker pods in namespace {ns}" + (f" for task {task}" if task else ""))
            return 0
        for t in found:
            phases = ", ".join(f"{n} {p}" for p, n in sorted(t["phases"].items()))
            print(f"task {t['taskId']}: {len(t['pods'])} pod(s): {phases}")
            for p in t["pods"]:
                code = "" if p["exitCode"] is None else f" exit {p['exitCode']}"
                print(f"  {p['name']}  worker {p['index']} attempt {p['attempt']}  "
                      f"{p['phase']}{code}")
        return 0

    _guard(False, body)


@manifests_app.command("workers")
def manifests_workers(
    config: WorkersConfigOption = Path("workers.yaml"),
    image: ImageOption = IMAGE,
    replicas: Annotated[int, typer.Option(min=1, help="Consumers sharing the stream.")] = 2,
) -> None:
    """`devscale workers serve` as a Deployment, its config as a ConfigMap, and a Role with
    exactly the verbs it uses on pods, pods/log and events."""

    def body() -> int:
        from devtrip_scale import manifests as m
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.manifests import objects

        settings = load_workers_config(config)
        print(m.dump(objects(settings.namespace, config.read_text(encoding="utf-8"), image,
                             replicas)), end="")
        return 0

    _guard(False, body)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="devscale")
    sys.exit(0)  # pragma: no cover - typer exits first
