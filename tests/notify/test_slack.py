"""SlackNotifier against a local HTTP receiver in place of Slack's endpoint: the payload, 429
with Retry-After honoured, 5xx retried a bounded number of times, 404/410 reported as
configuration errors, a receiver that is not there, and the URL never in any message."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devtrip_scale.core.errors import NotifyError
from devtrip_scale.notify import Notice
from devtrip_scale.notify.slack import SlackNotifier
from testbed.net import free_port
from testbed.receivers import SlackReceiver

NOTICE = [Notice("scaled", "info", "scaled:api:up", "api scaled up: 2 → 4", "cpu 140", "api")]
ALL = frozenset({"scaled"})


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.stop()


def test_posts_one_block_kit_message(slack: SlackReceiver) -> None:
    SlackNotifier(slack.url, ALL).send("devtrip", NOTICE)
    [request] = slack.requests
    body = request["body"]
    assert body["text"] == "devscale · devtrip: api scaled up: 2 → 4"
    assert [b["type"] for b in body["blocks"]] == ["header", "section"]


def test_429_waits_retry_after_then_delivers(slack: SlackReceiver) -> None:
    slack.reply((429, "rate_limited", {"Retry-After": "1"}))
    start = time.monotonic()
    SlackNotifier(slack.url, ALL).send("devtrip", NOTICE)
    assert time.monotonic() - start >= 1.0
    assert len(slack.requests) == 2


def test_500_is_retried_a_bounded_number_of_times(slack: SlackReceiver) -> None:
    slack.reply(*[(500, "rollup_error", {})] * 5)
    with pytest.raises(NotifyError, match="not delivered after 3 attempts: HTTP 500"):
        SlackNotifier(slack.url, ALL, sleep=lambda s: None).send("devtrip", NOTICE)
    assert len(slack.requests) == 3


def test_500_then_ok_delivers(slack: SlackReceiver) -> None:
    slack.reply((500, "rollup_error", {}))
    SlackNotifier(slack.url, ALL, sleep=lambda s: None).send("devtrip", NOTICE)
    assert len(slack.requests) == 2


@pytest.mark.parametrize(("status", "body", "says"), [
    (404, "no_service", "revoked"), (410, "channel_is_archived", "archived"),
    (400, "invalid_blocks", "invalid"), (403, "action_prohibited", "action_prohibited")])
def test_4xx_is_a_permanent_configuration_error(slack: SlackReceiver, status: int, body: str,
                                                says: str) -> None:
    slack.reply((status, body, {}))
    with pytest.raises(NotifyError, match=says) as caught:
        SlackNotifier(slack.url, ALL).send("devtrip", NOTICE)
    assert caught.value.permanent
    assert len(slack.requests) == 1
    assert slack.path not in str(caught.value)   # the webhook URL is a secret


def test_receiver_not_there() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/secret"
    with pytest.raises(NotifyError, match="cannot reach Slack") as caught:
        SlackNotifier(url, ALL, sleep=lambda s: None).send("devtrip", NOTICE)
    assert "secret" not in str(caught.value)
