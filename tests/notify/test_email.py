"""EmailNotifier against a real SMTP server (aiosmtpd) with STARTTLS or implicit TLS and a
certificate from a test CA: content, authentication, verification, refusals, a server that is
down, and the password never in any message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtrip_scale.core.errors import NotifyError
from devtrip_scale.notify import Notice
from devtrip_scale.notify.email import EmailNotifier, Security
from testbed.net import free_port
from testbed.receivers import SmtpServer

NOTICES = [Notice("capacity_exhausted", "critical", "k", "web needs 14 replicas but its "
                  "maximum is 10", "cpu asks for 14; raise maxReplicas or add capacity", "web")]
KINDS = frozenset({"capacity_exhausted"})
PASSWORD = "canary-smtp-pa55"


def notifier(smtp: SmtpServer, security: Security = "starttls", *, recipients: tuple[str, ...]
             = ("oncall@devtrip.example",), password: str | None = PASSWORD,
             ca_file: str | None = "default") -> EmailNotifier:
    return EmailNotifier(host="127.0.0.1", port=smtp.port, security=security,
                         sender="devscale@devtrip.example", recipients=recipients, kinds=KINDS,
                         username="devscale" if password else None, password=password,
                         ca_file=str(smtp.ca_file) if ca_file == "default" else ca_file,
                         timeout=5)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, password=PASSWORD, refuse={"nobody@devtrip.example"})
    yield server
    server.stop()


def test_starttls_auth_and_content(smtp: SmtpServer) -> None:
    notifier(smtp).send("devtrip", NOTICES)
    [msg] = smtp.messages
    assert msg["Subject"] == "[devscale] devtrip: web needs 14 replicas but its maximum is 10"
    assert len(msg["Subject"]) < 80
    assert msg["To"] == "oncall@devtrip.example"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and "raise maxReplicas" in text.get_content()
    assert html is not None and "<table" in html.get_content()
    assert smtp.logins == ["devscale"]


def test_implicit_tls(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path, mode="tls")
    try:
        notifier(server, "tls", password=None).send("devtrip", NOTICES)
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_certificate_is_verified(smtp: SmtpServer) -> None:
    with pytest.raises(NotifyError, match="SSLCertVerificationError"):
        notifier(smtp, ca_file=None).send("devtrip", NOTICES)
    assert smtp.messages == []


def test_wrong_password_is_named_without_the_password(smtp: SmtpServer) -> None:
    with pytest.raises(NotifyError, match="refused the login of devscale") as caught:
        notifier(smtp, password="wrong-pa55").send("devtrip", NOTICES)
    assert "wrong-pa55" not in str(caught.value)


def test_partial_refusal_is_reported(smtp: SmtpServer) -> None:
    with pytest.raises(NotifyError, match=r"refused some recipients: nobody@devtrip\.example"):
        notifier(smtp, recipients=("oncall@devtrip.example", "nobody@devtrip.example")).send(
            "devtrip", NOTICES)
    assert smtp.recorder.envelopes[0][1] == ["oncall@devtrip.example"]


def test_server_down_fails_within_the_timeout(tmp_path: Path) -> None:
    down = EmailNotifier(host="127.0.0.1", port=free_port(), security="starttls",
                         sender="devscale@devtrip.example", recipients=["a@devtrip.example"],
                         kinds=KINDS, timeout=2)
    with pytest.raises(NotifyError, match="ConnectionRefusedError"):
        down.send("devtrip", NOTICES)
