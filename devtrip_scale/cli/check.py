"""`devscale check`: one read → decide → act → tell pass under the namespace's Lease."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devtrip_scale.cli import _wiring as wiring
from devtrip_scale.cli._common import (
    ConfigOption,
    ContextOption,
    DeploymentOption,
    DurationMetavar,
    KubeconfigOption,
    ListOutput,
    ListOutputOption,
    NamespaceOption,
    debugging,
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
    from collections.abc import Sequence

    from devtrip_scale.notify import Notice
    from devtrip_scale.scaling.config import Settings
    from devtrip_scale.scaling.report import CheckReport

EPILOG = example("devscale check -c devscale.yaml --dry-run -d api")


def check(
    config: ConfigOption = Path("devscale.yaml"),
    namespace: NamespaceOption = None,
    deployment: DeploymentOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Compute and show the decisions; change nothing.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Add the PromQL, raw readings, timings and API calls "
        "(also DEBUG=1), after the table.")] = False,
    debug_file: Annotated[Path | None, typer.Option(
        "--debug-file", metavar="<file>", dir_okay=False,
        help="Write the --debug trace to this file instead of the terminal (implies "
        "--debug).")] = None,
    output: ListOutputOption = ListOutput.table,
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
        from devtrip_scale.core.trace import Trace
        from devtrip_scale.kube import connect
        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.notify.runs import MemoryFile
        from devtrip_scale.scaling import render

        settings = load(config)
        narrow: tuple[str, ...] = ()
        if settings.is_fleet:   # -n narrows a fleet pass to one of its namespaces
            narrow = (namespace,) if namespace else ()
        elif namespace:
            settings = load(config, namespace)
        loaded.append(settings)
        debug_on = debugging(debug) or debug_file is not None
        notifiers = notifiers_from(settings.notify)
        moment = now or datetime.now(UTC)
        alerts = None if dry_run or not notifiers else wiring.run_alerts(
            settings, notifiers, MemoryFile.for_runner(settings.namespace, config))
        trace = Trace()

        def locked_pass(recovered: Sequence[Notice]) -> CheckReport:
            api = connect(kubeconfig, context)
            source = wiring.metrics_source(settings, trace)
            lock = wiring.lease(api, settings, _lease_seconds(lease_duration), trace)
            try:
                if dry_run:  # a dry run writes nothing: it needs no lock
                    return wiring.check_pass(settings, api, source, trace, notifiers=notifiers,
                                             now=moment, dry_run=True, only=deployment or (),
                                             in_namespaces=narrow)
                lock.acquire()   # one writer at a time, renewed while the pass runs
                with lock.kept() as writable:
                    return wiring.check_pass(settings, api, source, trace, notifiers=notifiers,
                                             now=moment, only=deployment or (),
                                             recovered=recovered, writable=writable,
                                             in_namespaces=narrow)
            finally:
                lock.release()
                source.close()
                api.close()

        report = wiring.alerting(alerts, moment, locked_pass)
        if pushgateway and not dry_run:
            from devtrip_scale.scaling.pushgateway import push

            if problem := push(pushgateway, report):
                report.warnings.append(problem)
        if output is ListOutput.json:
            print_json({**json.loads(render.to_json(report, debug=debug_on)), "error": None})
        else:
            screen = out()
            screen.print(render.table(report, width=screen.width,
                                      wide=output is ListOutput.wide,
                                      details=bool(deployment)))
        if debug_file is not None:
            debug_file.write_text(render.debug(report) + "\n")
            err.print(f"debug: trace written to {debug_file}", markup=False)
        elif debug_on:
            err.print(render.debug(report), markup=False, soft_wrap=True)
            if err.is_terminal and output is not ListOutput.json:
                err.print(f"debug: {len(report.trace.entries)} requests above, the table "
                          "before them; --debug-file <file> moves them", markup=False,
                          style="dim", soft_wrap=False)
        return int(report.exit_code)

    loaded: list[Settings] = []
    started = (now or datetime.now(UTC)).isoformat()
    guard(debug, body, json_failure(lambda: {
        "namespace": loaded[0].namespace if loaded else None, "dryRun": dry_run,
        "time": started, "deployments": [], "metricErrors": {}, "warnings": [], "queries": [],
        "notified": [], "notifyFailures": []}) if output is ListOutput.json else None)


def _lease_seconds(text: str) -> int:
    seconds = int(parse_duration(text, "--lease-duration").total_seconds())
    if seconds < 6:
        raise ConfigError(f"--lease-duration {text}: at least 6s (it is renewed every third "
                          "of it)")
    return seconds
