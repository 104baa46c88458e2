"""EmailNotifier: a text and HTML message over SMTP with STARTTLS (587) or TLS (465), verified."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Literal

from devtrip_scale.core.errors import NotifyError
from devtrip_scale.notify import Kind, Notice
from devtrip_scale.notify.messages import email_html, email_subject, email_text

Security = Literal["starttls", "tls", "none"]


class EmailNotifier:
    """Sends one message per run to every recipient; refusals are reported, never silent."""

    name = "email"

    def __init__(self, *, host: str, port: int, security: Security, sender: str,
                 recipients: Sequence[str], kinds: frozenset[Kind], username: str | None = None,
                 password: str | None = None, ca_file: str | None = None,
                 timeout: float = 10.0) -> None:
        self._host, self._port, self._security = host, port, security
        self._sender, self._recipients = sender, list(recipients)
        self._username, self._password = username, password
        self._ca_file = ca_file
        self._timeout = timeout
        self.kinds = kinds

    def message(self, namespace: str, notices: Sequence[Notice]) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = email_subject(namespace, notices)
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg.set_content(email_text(namespace, notices))
        msg.add_alternative(email_html(namespace, notices), subtype="html")
        return msg

    def send(self, namespace: str, notices: Sequence[Notice]) -> None:
        msg = self.message(namespace, notices)
        where = f"SMTP {self._host}:{self._port}"
        try:
            context = ssl.create_default_context(cafile=self._ca_file)
            if self._security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self._host, self._port, context=context,
                                                      timeout=self._timeout)
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with smtp:
                if self._security == "starttls":
                    smtp.starttls(context=context)
                if self._username:
                    smtp.login(self._username, self._password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as e:
            raise NotifyError(f"{where} refused the login of {self._username} ({e.smtp_code})",
                              permanent=True) from None
        except smtplib.SMTPRecipientsRefused as e:
            raise NotifyError(f"{where} refused every recipient: "
                              f"{', '.join(sorted(e.recipients))}", permanent=True) from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
            raise NotifyError(f"{where}: {type(e).__name__}: {_short(e)}") from None
        if refused:
            raise NotifyError(f"{where} refused some recipients: {', '.join(sorted(refused))} "
                              "(the others got the message)", permanent=True)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:200]
