"""The configured channels, built from the settings and the environment (where secrets live)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.notify import Kind, Notifier
from devtrip_scale.notify.settings import NotifyModel


def notifiers_from(notify: NotifyModel, env: Mapping[str, str] | None = None) -> list[Notifier]:
    """Slack when its webhook env var is set; email when configured with recipients.

    Takes a config's `notify` block (the check config and workers.yaml each have one)."""
    from devtrip_scale.notify.email import EmailNotifier
    from devtrip_scale.notify.slack import SlackNotifier

    env = os.environ if env is None else env
    out: list[Notifier] = []
    slack = notify.slack
    if url := env.get(slack.webhook_env, "").strip():
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"${slack.webhook_env} does not hold a webhook URL")
        out.append(SlackNotifier(url, _kinds(slack.kinds), timeout=slack.timeout_seconds))
    email = notify.email
    if email is not None and email.recipients:
        password = env.get(email.password_env) if email.password_env else None
        if email.ca_file and not Path(email.ca_file).is_file():
            raise ConfigError(f"notify.email.ca_file {email.ca_file} does not exist")
        if email.password_env and password is None:
            raise ConfigError(f"notify.email.password_env names ${email.password_env}, "
                              "which is not set")
        out.append(EmailNotifier(
            host=email.smtp_host, port=email.smtp_port, security=email.security,
            sender=email.sender, recipients=email.recipients, kinds=_kinds(email.kinds),
            username=email.username, password=password, ca_file=email.ca_file,
            timeout=email.timeout_seconds))
    return out


def _kinds(kinds: tuple[str, ...]) -> frozenset[Kind]:
    return frozenset({*kinds, "test"})  # type: ignore[arg-type]
