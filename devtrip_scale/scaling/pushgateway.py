"""A cron-style run's outcome pushed to a Prometheus Pushgateway, as Prometheus recommends for
batch jobs: `check` from crontab, a CronJob or Jenkins has no /metrics endpoint to scrape.

The push carries `devscale run`'s own gauges under the same names (desired and current replicas,
readings, capacity exhausted, scaling held, last success), so one rule set and one dashboard
serve both. It goes to the group job="devscale", namespace=<namespace> with POST, which replaces
the metrics of the names it carries and keeps the others: a failed run does not send
`devscale_last_success_timestamp_seconds`, so the last good run's time stays and
`DevscaleNotRunning` can fire. Counters are not pushed (a batch job's count restarts each run).
A push that fails is a warning in the report, never a failed run.
"""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit

from devtrip_scale.core.redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from devtrip_scale.scaling.report import CheckReport

PUSHGATEWAY_ENV = "DEVSCALE_PUSHGATEWAY"
JOB = "devscale"
TIMEOUT_SECONDS = 5.0


def _netloc(host: str | None, port: int | None) -> str:
    host = host or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def push(url: str, report: CheckReport, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Push the report's gauges; None when it worked, else a warning naming the gateway."""
    from prometheus_client import pushadd_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    from devtrip_scale.scaling.loop import Telemetry

    telemetry = Telemetry()
    telemetry.record(report)
    kept_out = [telemetry.leader, telemetry.decisions, telemetry.errors]
    if report.exit_code != 0:
        kept_out.append(telemetry.last_success)
    for collector in kept_out:
        telemetry.registry.unregister(collector)

    parts = urlsplit(url if "://" in url else f"http://{url}")
    handler: Callable[..., Callable[[], None]] = default_handler
    if parts.username is not None:
        user, password = parts.username, parts.password

        def handler(**request: Any) -> Callable[[], None]:
            return basic_auth_handler(**request, username=user, password=password)

    shown = redact_url(url)
    gateway = urlunsplit(parts._replace(netloc=_netloc(parts.hostname, parts.port)))
    # The Pushgateway overwrites a pushed label with the grouping key's: a fleet's series keep
    # their own namespaces under a `fleet` group instead.
    fleet = any(r.namespace for r in report.results)
    group = {"fleet": report.namespace} if fleet else {"namespace": report.namespace}
    try:
        pushadd_to_gateway(gateway, job=JOB, registry=telemetry.registry,
                           grouping_key=group, timeout=timeout,
                           handler=handler)
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = e.reason if isinstance(e, URLError) and not isinstance(e, HTTPError) else e
        return f"metrics not pushed to the Pushgateway {shown}: {reason}"
    return None
