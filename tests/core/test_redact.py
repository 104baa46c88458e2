"""core.redact, the one credential masker (the Pushgateway's URL in messages and crontab lines,
the Redis URL in the worker server's messages): the password is masked and the user kept; a
user name alone is masked whole; the host, port, path, query and scheme-less form are kept; a
URL without credentials comes back unchanged."""

from __future__ import annotations

import pytest

from devtrip_scale.core.redact import redact_url
from devtrip_scale.workers.config import RedisModel


@pytest.mark.parametrize(("url", "shown"), [
    ("http://pg:9091", "http://pg:9091"),
    ("pg:9091", "pg:9091"),
    ("redis://redis:6379/0", "redis://redis:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ("https://user:pw@pg.example/prefix", "https://user:***@pg.example/prefix"),
    ("redis://user:s3cr3t@redis:6379/0", "redis://user:***@redis:6379/0"),
    ("redis://:s3cr3t@redis:6379", "redis://:***@redis:6379"),
    ("https://ghp_token@pg:9091", "https://***@pg:9091"),
    ("http://u:p@[::1]:9091", "http://u:***@[::1]:9091"),
    ("ops:s3cr3t@pg:9091", "ops:***@pg:9091"),
    ("redis://user:p@ss@redis/0", "redis://user:***@redis/0"),
    ("https://u:p@pg.example/a?b=1#c", "https://u:***@pg.example/a?b=1#c"),
    ("redis://u:p@Redis.Example:notaport", "redis://u:***@Redis.Example:notaport"),
], ids=["plain", "no-scheme", "redis-plain", "unix", "user-and-password", "redis",
        "password-only", "user-only-token", "ipv6", "no-scheme-credentials", "at-in-password",
        "path-query-fragment", "kept-as-written"])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redis_safe_url_is_the_same_mask() -> None:
    url = "rediss://worker:s3cr3t@redis.example:6380/2"
    assert RedisModel(url=url).safe_url() == redact_url(url) == (
        "rediss://worker:***@redis.example:6380/2")
