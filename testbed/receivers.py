"""Real peers on loopback: an SMTP server (aiosmtpd, TLS from a test CA) and a local HTTP receiver
standing in for Slack's webhook endpoint, both recording what arrives; and a queue's JSON endpoint
whose answer and delay the test sets."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testbed.net import free_port


@dataclass
class SlackReceiver:
    """Answers webhook POSTs with scripted (status, body, headers); records every request."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[tuple[int, str, dict[str, str]]] = field(default_factory=deque)
    path: str = "/services/T000/B000/canary-webhook-s3cr3t"

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.requests.append({"path": self.path,
                                          "body": json.loads(self.rfile.read(length))})
                status, body, headers = (receiver.script.popleft() if receiver.script
                                         else (200, "ok", {}))
                if self.path != receiver.path:
                    status, body, headers = 404, "no_service", {}
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def reply(self, *responses: tuple[int, str, dict[str, str]]) -> None:
        self.script.extend(responses)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class QueueEndpoint:
    """`GET /metrics/waiting-jobs` answers `{"waiting": N}` after `delay` seconds; counts GETs."""

    def __init__(self, waiting: float = 0, delay: float = 0) -> None:
        self.waiting, self.delay, self.gets = waiting, delay, 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.gets += 1
                time.sleep(endpoint.delay)
                found = self.path == "/metrics/waiting-jobs"
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200 if found else 404)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"waiting": endpoint.waiting}).encode()
                                     if found else b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/metrics/waiting-jobs"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Recorder:
    def __init__(self, refuse: set[str]) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = refuse

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(msg)
        return "250 Message accepted"


class SmtpServer:
    """aiosmtpd with a certificate from a throw-away CA the tests trust (trustme).

    mode "starttls" (port-587 style, STARTTLS required) or "tls" (port-465 style, implicit TLS).
    With `password`, AUTH is required (user `devscale`).
    """

    def __init__(self, workdir: Path, *, mode: str = "starttls", password: str | None = None,
                 refuse: set[str] | None = None) -> None:
        import trustme
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.ca_file = workdir / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.recorder = _Recorder(refuse or set())
        self.port = free_port()
        self.logins: list[str] = []

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         auth_data: Any) -> AuthResult:
            ok = auth_data.login == b"devscale" and auth_data.password == (password or "").encode()
            self.logins.append(auth_data.login.decode())
            # handled=False makes aiosmtpd answer 535; its default sends no reply at all.
            return AuthResult(success=ok, handled=ok)

        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if mode == "tls":
            kwargs["ssl_context"] = context
        else:
            kwargs.update(tls_context=context, require_starttls=True)
        if password is not None:
            kwargs.update(authenticator=authenticate, auth_required=True,
                          auth_require_tls=True)
        self._controller = Controller(self.recorder, **kwargs)
        self._controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.recorder.messages

    def stop(self) -> None:
        self._controller.stop()
