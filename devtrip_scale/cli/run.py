"""`devscale run`: the check on an interval, leader-elected, with /healthz and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devtrip_scale.cli import _wiring as wiring
from devtrip_scale.cli._common import (
    ConfigOption,
    ContextOption,
    DebugOption,
    DurationMetavar,
    KubeconfigOption,
    NamespaceOption,
    err,
    example,
    guard,
    load,
    parse_duration,
    parse_listen,
)
from devtrip_scale.core.errors import ConfigError

if TYPE_CHECKING:
    from devtrip_scale.scaling.report import CheckReport

EPILOG = example("devscale run -c devscale.yaml --interval 60s --listen 127.0.0.1:8080")


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

        from devtrip_scale.core.trace import Trace
        from devtrip_scale.kube import connect
        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.notify.runs import InProcessMemory
        from devtrip_scale.scaling.loop import LoopState, Telemetry, run_loop, serve
        from devtrip_scale.scaling.sources.cache import CachingSource

        every = parse_duration(interval, "--interval").total_seconds()
        lease_seconds = (parse_duration(lease_duration, "--lease-duration").total_seconds()
                         if lease_duration else max(15.0, 3 * every))
        host, port = parse_listen(listen)
        settings = load(config, namespace)
        notifiers = notifiers_from(settings.notify)
        api = connect(kubeconfig, context)
        source = wiring.metrics_source(settings)
        if settings.prometheus.cache_seconds:
            source = CachingSource(source, settings.prometheus.cache_seconds)

        alerts = (wiring.run_alerts(settings, notifiers, InProcessMemory()) if notifiers
                  else None)

        def check() -> CheckReport:
            moment = datetime.now(UTC)
            with lock.kept() as writable:   # renewed while the pass runs
                return wiring.alerting(alerts, moment, lambda recovered: wiring.check_pass(
                    settings, api, source, Trace(), notifiers=notifiers, now=moment,
                    recovered=recovered, writable=writable))

        lock = wiring.lease(api, settings, int(lease_seconds))
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

    guard(debug, body)
