"""Who may call the gRPC API: a bearer token on every method but the health service.

`decide` is the pure rule (unit-tested); `AuthInterceptor` applies it before any handler runs,
ending a refused call UNAUTHENTICATED. Client certificates (mTLS) are checked by the TLS
handshake itself (the server requires and verifies them), so a call that reaches the interceptor
in mTLS mode already has a verified certificate. Tokens are compared in constant time and never
appear in a message or a log.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc import aio

log = logging.getLogger("devscale.workers.api")

OPEN_PREFIX = "/grpc.health.v1.Health/"     # health checks need no credentials
MISSING = "missing bearer token: send metadata 'authorization: Bearer <token>'"
WRONG = "wrong token"


def bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of the first `authorization: Bearer …` metadata entry, if any."""
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def decide(method: str, metadata: Iterable[tuple[str, str | bytes]],
           tokens: Sequence[str]) -> str | None:
    """Why a call is refused, or None when it may run.

    `tokens` empty: no token is asked for (mTLS alone; the handshake checked the client).
    """
    if method.startswith(OPEN_PREFIX) or not tokens:
        return None
    given = bearer(metadata)
    if given is None:
        return MISSING
    ok = False
    for token in tokens:   # every one compared, so the time says nothing about which matched
        ok |= hmac.compare_digest(given.encode(), token.encode())
    return None if ok else WRONG


def _refusal(reason: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same shape as the method's that only ends the call UNAUTHENTICATED."""

    async def abort(request: Any, context: aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    streams_in = handler is not None and handler.request_streaming
    streams_out = handler is not None and handler.response_streaming
    if streams_in and streams_out:
        return grpc.stream_stream_rpc_method_handler(abort)
    if streams_in:
        return grpc.stream_unary_rpc_method_handler(abort)
    if streams_out:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class AuthInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses unauthenticated calls before their handler runs."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = tuple(tokens)
        self.refused = 0

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails],
                                     Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        reason = decide(details.method, details.invocation_metadata or (), self._tokens)
        handler = await continuation(details)
        if reason is None:
            return handler
        self.refused += 1
        log.warning("refused %s: %s", details.method, reason)
        return _refusal(reason, handler)
