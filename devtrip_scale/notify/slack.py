"""SlackNotifier: one incoming-webhook POST per run; 429 waits, 5xx retries, 4xx is config."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from devtrip_scale.core.errors import NotifyError
from devtrip_scale.notify import Kind, Notice
from devtrip_scale.notify.messages import slack_payload

ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0
PERMANENT = {
    400: "Slack refused the message as invalid",
    403: "Slack refused the post (action_prohibited)",
    404: "the webhook is revoked or its channel is gone: create a new webhook",
    410: "the webhook's channel is archived: create a new webhook",
}


class SlackNotifier:
    """Posts to an incoming webhook. The URL is a secret: it never appears in any message."""

    name = "slack"

    def __init__(self, webhook_url: str, kinds: frozenset[Kind], *, timeout: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._url = webhook_url
        self.kinds = kinds
        self._timeout = timeout
        self._sleep = sleep

    def send(self, namespace: str, notices: Sequence[Notice]) -> None:
        import httpx

        payload = slack_payload(namespace, notices)
        problem = ""
        with httpx.Client(timeout=self._timeout) as client:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    response = client.post(self._url, json=payload)
                except httpx.TimeoutException:
                    problem = f"no answer within {self._timeout:g}s"
                    continue
                except httpx.HTTPError as e:
                    problem = f"cannot reach Slack ({type(e).__name__})"
                    continue
                status, body = response.status_code, response.text.strip()[:100]
                if status == 200:
                    return
                if status == 429:
                    wait = _retry_after(response.headers.get("Retry-After"))
                    problem = f"rate limited (HTTP 429), waited {wait:g}s"
                    if attempt < ATTEMPTS:
                        self._sleep(wait)
                    continue
                if status in PERMANENT or 400 <= status < 500:
                    why = PERMANENT.get(status, "Slack refused the post")
                    raise NotifyError(f"{why} (HTTP {status} {body})", permanent=True)
                problem = f"HTTP {status} {body}"
                if attempt < ATTEMPTS:
                    self._sleep(min(2.0 ** (attempt - 1), MAX_RETRY_AFTER))
        raise NotifyError(f"Slack message not delivered after {ATTEMPTS} attempts: {problem}")


def _retry_after(header: str | None) -> float:
    try:
        return max(0.0, min(float(header or 1), MAX_RETRY_AFTER))
    except ValueError:
        return 1.0
