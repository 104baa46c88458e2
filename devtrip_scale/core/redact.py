"""Credential masking: a URL as messages and printed lines may show it, its secret replaced by
`***` and everything else kept, so that a reader still sees which server and which user."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """`url` with the password of its user info masked (`redis://user:***@redis:6379/0`,
    `redis://:***@redis:6379`); a user name alone is masked whole (`https://***@host`), as it
    may be a token. A URL without user info comes back as it is; one without a scheme
    (`user:pw@pg:9091`) is read as http and shown without it."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    text = urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))
    return text if "://" in url else text.removeprefix("http://")
