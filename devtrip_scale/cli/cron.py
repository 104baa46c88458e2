"""`devscale cron install|uninstall|show`: run the check from this machine's crontab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from devtrip_scale.cli._common import ConfigOption, Output, guard, load

app = typer.Typer(help="Run the check from this machine's crontab.", no_args_is_help=True)


UserOption = Annotated[str | None, typer.Option(
    "--user", "-u", help="Another user's crontab (root only).")]


@app.command("install")
def cron_install(
    config: ConfigOption = Path("devscale.yaml"),
    every: Annotated[str, typer.Option(
        help="How often: 2m, 5m, 1h, … or @hourly, @daily, @weekly, @reboot, …")] = "2m",
    schedule: Annotated[str | None, typer.Option(
        help="A cron schedule instead of --every, as crond takes it, e.g. "
        "'*/2 8-20 * * mon-fri'.")] = None,
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
        from devtrip_scale.scaling import cron

        settings = load(config, namespace)
        when = cron.validate_schedule(schedule) if schedule else cron.every_to_schedule(every)
        target = cron.resolve_target(settings.namespace, kubeconfig, context, pushgateway)
        log_file = log or Path.home() / ".local" / "state" / "devscale" / "check.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        line = cron.entry(when, config, log_file, target)
        changed = cron.install(line, config, user)
        print(("installed" if changed else "already installed") + f":\n{cron.summary(line)}")
        return 0

    guard(False, body)


@app.command("uninstall")
def cron_uninstall(
    config: ConfigOption = Path("devscale.yaml"),
    all_entries: Annotated[bool, typer.Option("--all", help="Every devscale entry.")] = False,
    user: UserOption = None,
) -> None:
    """Remove the crontab entry of this config (or all of devscale's)."""

    def body() -> int:
        from devtrip_scale.scaling import cron

        removed = cron.uninstall(None if all_entries else config, user)
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")
        return 0

    guard(False, body)


@app.command("show")
def cron_show(
    user: UserOption = None,
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="table for people, json for machines.")] = Output.table,
) -> None:
    """List devscale's crontab entries, each with the cluster, context and namespace it acts on.

    Example: devscale cron show -o json
    """

    def body() -> int:
        from devtrip_scale.scaling import cron

        lines = cron.entries(user)
        if output is Output.json:
            print(json.dumps({"schemaVersion": 1,
                              "entries": [cron.describe(line) for line in lines]}, indent=2))
        else:
            print("\n".join(cron.summary(line) for line in lines) if lines
                  else "no devscale entry in the crontab")
        return 0

    guard(False, body)
