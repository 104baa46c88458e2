"""`devscale notify test`: send a sample message to every configured channel."""

from __future__ import annotations

from pathlib import Path

import typer

from devtrip_scale.cli._common import ConfigOption, DebugOption, err, example, guard, load
from devtrip_scale.core.errors import ConfigError, DevscaleError, ExitCode

app = typer.Typer(help="Check the notification channels.", no_args_is_help=True)


@app.command("test", epilog=example(
    "SLACK_WEBHOOK=https://hooks.slack.com/services/… devscale notify test -c devscale.yaml"))
def notify_test(config: ConfigOption = Path("devscale.yaml"),
                debug: DebugOption = False) -> None:
    """Send a sample message to every configured channel and say what happened."""

    def body() -> int:
        from devtrip_scale.notify import Notice
        from devtrip_scale.notify.channels import notifiers_from

        settings = load(config)
        notifiers = notifiers_from(settings.notify)
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

    guard(debug, body)
