"""Who may call the API (pure decisions of the interceptor): health needs nothing, every other
method (reflection too) a matching bearer token; refusals never echo the token."""

from __future__ import annotations

import pytest

from devtrip_scale.workers.api.auth import MISSING, WRONG, bearer, decide

TOKENS = ("s3cret-token", "second-token")
SCALE = "/devscale.v1.OttoscalerService/ScaleUp"
REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.mark.parametrize(("method", "metadata", "tokens", "refused"), [
    pytest.param(SCALE, [("authorization", "Bearer s3cret-token")], TOKENS, None, id="token"),
    pytest.param(SCALE, [("authorization", "Bearer second-token")], TOKENS, None,
                 id="second-token"),
    pytest.param(SCALE, [("authorization", "bearer   s3cret-token ")], TOKENS, None,
                 id="scheme-any-case-spaces"),
    pytest.param(SCALE, [("Authorization", b"Bearer s3cret-token")], TOKENS, None,
                 id="bytes-value"),
    pytest.param(SCALE, [], TOKENS, MISSING, id="no-metadata"),
    pytest.param(SCALE, [("authorization", "Basic czNjcmV0")], TOKENS, MISSING,
                 id="not-bearer"),
    pytest.param(SCALE, [("authorization", "Bearer ")], TOKENS, MISSING, id="empty-token"),
    pytest.param(SCALE, [("x-token", "s3cret-token")], TOKENS, MISSING, id="other-header"),
    pytest.param(SCALE, [("authorization", "Bearer s3cret")], TOKENS, WRONG, id="prefix"),
    pytest.param(SCALE, [("authorization", "Bearer s3cret-token-and-more")], TOKENS, WRONG,
                 id="longer"),
    pytest.param(REFLECT, [], TOKENS, MISSING, id="reflection-needs-auth"),
    pytest.param("/grpc.health.v1.Health/Check", [], TOKENS, None, id="health-check-open"),
    pytest.param("/grpc.health.v1.Health/Watch", [], TOKENS, None, id="health-watch-open"),
    pytest.param("/grpc.health.v1.HealthX/Check", [], TOKENS, MISSING,
                 id="lookalike-service-not-open"),
    pytest.param(SCALE, [], (), None, id="mtls-only-no-token-asked"),
])
def test_decide(method: str, metadata: list[tuple[str, str | bytes]], tokens: tuple[str, ...],
                refused: str | None) -> None:
    assert decide(method, metadata, tokens) == refused


def test_refusals_never_carry_the_token() -> None:
    for reason in (MISSING, WRONG):
        assert all(t not in reason for t in TOKENS)
    assert decide(SCALE, [("authorization", "Bearer guess-123")], TOKENS) == WRONG


@pytest.mark.parametrize(("metadata", "token"), [
    pytest.param([("a", "b"), ("authorization", "Bearer t1"), ("authorization", "Bearer t2")],
                 "t1", id="first-wins"),
    pytest.param([("authorization", "Token t1")], None, id="other-scheme"),
])
def test_bearer(metadata: list[tuple[str, str]], token: str | None) -> None:
    assert bearer(metadata) == token
