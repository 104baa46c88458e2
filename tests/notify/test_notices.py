"""Notices (pure): the quiet period with its
"resolved" message, and the rendered Slack payload and email within the channels' limits."""

from __future__ import annotations

from datetime import timedelta

from devtrip_scale.notify import Notice, NotifyState, select
from devtrip_scale.notify.messages import (
    MAX_BLOCKS,
    email_html,
    email_subject,
    email_text,
    slack_payload,
)
from tests.conftest import NOW

QUIET = timedelta(minutes=30)


def test_quiet_period_and_resolved() -> None:
    exhausted = Notice("capacity_exhausted", "critical", "capacity_exhausted:web", "web maxed",
                       "", "web")
    sent, state = select([exhausted], NotifyState(), NOW, QUIET)
    assert sent == [exhausted]
    sent, state = select([exhausted], state, NOW + timedelta(minutes=10), QUIET)
    assert sent == []                                   # same alert within 30 min: quiet
    sent, state = select([exhausted], state, NOW + timedelta(minutes=30), QUIET)
    assert sent == [exhausted]                          # quiet period over: told again
    sent, state = select([], state, NOW + timedelta(minutes=31), QUIET)
    assert [n.kind for n in sent] == ["recovered"]
    assert sent[0].title == "resolved: web maxed"
    sent, state = select([exhausted], state, NOW + timedelta(minutes=32), QUIET)
    assert sent == [exhausted]                          # back again: told at once


def test_resolved_names_a_deployment_only_when_its_key_does() -> None:
    conditions = [Notice("held", "warning", "held:api", "api held", "", "api"),
                  Notice("failed", "critical", "failed:metric:cpu", "cpu unread", ""),
                  Notice("failed", "critical", "failed:run:lock", "kept out", "")]
    _, state = select(conditions, NotifyState(), NOW, QUIET)
    resolved, _ = select([], state, NOW + timedelta(minutes=2), QUIET)
    assert {n.key: n.deployment for n in resolved} == {
        "recovered:held:api": "api", "recovered:failed:metric:cpu": None,
        "recovered:failed:run:lock": None}


def test_state_survives_encoding() -> None:
    _, state = select([Notice("held", "warning", "held:api", "t", "", "api")], NotifyState(),
                      NOW, QUIET)
    again = NotifyState.decode(state.encode())
    assert again == state


def test_slack_payload_stays_within_limits() -> None:
    notices = [Notice("scaled", "info", f"scaled:d{i}:up", f"d{i} scaled up: 1 → 2",
                      "x" * 5000, f"d{i}") for i in range(80)]
    payload = slack_payload("devtrip", notices)
    assert payload["text"]                               # the notification fallback
    assert len(payload["blocks"]) <= MAX_BLOCKS
    assert payload["blocks"][0]["type"] == "header"
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    sections = [b for b in payload["blocks"] if b["type"] == "section"]
    assert all(1 <= len(b["text"]["text"]) <= 3000 for b in sections)
    assert sections[0]["text"]["text"].endswith("…")
    assert payload["blocks"][-1]["type"] == "context"   # "… and 32 more Deployments"


def test_slack_escapes_control_characters() -> None:
    payload = slack_payload("devtrip", [Notice("failed", "critical", "k", "a <b> & c", "", "x")])
    assert "a &lt;b&gt; &amp; c" in payload["blocks"][1]["text"]["text"]


def test_email_subject_says_what_happened_in_under_80_characters() -> None:
    one = [Notice("capacity_exhausted", "critical", "k", "web needs 14 replicas but its "
                  "maximum is 10", "", "web")]
    assert email_subject("devtrip", one) == \
        "[devscale] devtrip: web needs 14 replicas but its maximum is 10"
    many = [*one, Notice("failed", "critical", "k2", "x" * 200, "", None)]
    assert email_subject("devtrip", many) == "[devscale] devtrip: 1 capacity exhausted, 1 failed"
    assert len(email_subject("devtrip", [Notice("failed", "critical", "k", "y" * 300, "")])) < 80


def test_email_text_and_html() -> None:
    notices = [Notice("failed", "critical", "k", "db: scaling <failed>", "forbidden", "db")]
    assert "- [critical] db: scaling <failed>\n  forbidden" in email_text("devtrip", notices)
    assert "db: scaling &lt;failed&gt;" in email_html("devtrip", notices)
