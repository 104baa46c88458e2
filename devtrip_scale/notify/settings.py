"""The `notify:` block of a config file: quiet period, Slack and email (shared by both wings)."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from a string when it builds these models, a share of `config validate`'s start.
from typing import Literal

from pydantic import Field, field_validator

from devtrip_scale.core.yamlfile import Model

NotifyKind = Literal["scaled", "capacity_exhausted", "held", "failed", "recovered"]


class SlackModel(Model):
    """Slack incoming webhook; enabled when the env var it names holds the URL."""

    webhook_env: str = "SLACK_WEBHOOK"
    kinds: tuple[NotifyKind, ...] = ("scaled", "capacity_exhausted", "held", "failed",
                                     "recovered")
    timeout_seconds: float = Field(default=5, gt=0, le=60)


class EmailModel(Model):
    """SMTP delivery; recipients from the file or $EMAIL_RECIPIENTS (comma separated)."""

    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(min_length=3, pattern=r"@")
    recipients: tuple[str, ...] = ()
    ca_file: str | None = None
    kinds: tuple[NotifyKind, ...] = ("capacity_exhausted", "failed", "recovered")
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        for r in recipients:
            if "@" not in r:
                raise ValueError(f"{r!r} is not an email address")
        return recipients


class NotifyModel(Model):
    quiet_minutes: float = Field(default=30, ge=0)
    lock_contention_runs: int = Field(
        default=3, ge=1, description="tell when this many runs in a row found the lock held")
    slack: SlackModel = SlackModel()
    email: EmailModel | None = None
