"""`devscale status`: each target as devscale last left it, read-only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from devtrip_scale.cli._common import (
    ConfigOption,
    ContextOption,
    DebugOption,
    DeploymentOption,
    KubeconfigOption,
    ListOutput,
    ListOutputOption,
    NamespaceOption,
    example,
    guard,
    json_failure,
    load,
    out,
    print_json,
)

EPILOG = example("devscale status -c devscale.yaml -d api -o json")


def status(
    config: ConfigOption = Path("devscale.yaml"),
    namespace: NamespaceOption = None,
    deployment: DeploymentOption = None,
    output: ListOutputOption = ListOutput.table,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Show each target as devscale last left it, read-only: targets, replicas, last decision
    and why, held-until, last scale (like `kubectl get hpa`)."""

    def body() -> int:
        from devtrip_scale.kube import connect
        from devtrip_scale.scaling import status as st

        settings = load(config)
        if namespace and not settings.is_fleet:
            settings = load(config, namespace)
        api = connect(kubeconfig, context)
        try:
            if settings.is_fleet:   # -n narrows a fleet to one of its namespaces
                report = st.collect_fleet(settings, api, datetime.now(UTC), deployment or (),
                                          (namespace,) if namespace else ())
            else:
                report = st.collect(settings, api, datetime.now(UTC), deployment or ())
        finally:
            api.close()
        if output is ListOutput.json:
            print_json({**st.to_dict(report), "exitCode": int(report.exit_code),
                         "error": None})
        else:
            screen = out()
            screen.print(st.table(report, width=screen.width, wide=output is ListOutput.wide))
        return int(report.exit_code)

    guard(debug, body, json_failure(lambda: {"deployments": []})
          if output is ListOutput.json else None)
