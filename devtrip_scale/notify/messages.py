"""Notices as a Slack Block Kit payload and as an email's subject, text and HTML (pure)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import Any

from devtrip_scale.notify import Notice

ICONS = {"scaled": "📈", "capacity_exhausted": "🚨", "held": "⏸️", "failed": "❌",
         "recovered": "✅", "test": "🔔"}
LABELS = {"scaled": "scaled", "capacity_exhausted": "capacity exhausted", "held": "held",
          "failed": "failed", "recovered": "resolved", "test": "test"}
MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
SUBJECT_LIMIT = 79


def cut(text: str, limit: int) -> str:
    """Truncate with an ellipsis rather than fail (Slack refuses over-long fields)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(notices: Sequence[Notice]) -> str:
    counts = Counter(LABELS[n.kind] for n in notices)
    return ", ".join(f"{count} {label}" for label, count in counts.items())


def line(n: Notice) -> str:
    return f"{ICONS[n.kind]} {n.title} — {n.text}" if n.text else f"{ICONS[n.kind]} {n.title}"


def slack_payload(namespace: str, notices: Sequence[Notice]) -> dict[str, Any]:
    """One message per run: a header, a section per Deployment, and the text fallback."""
    groups: dict[str, list[Notice]] = {}
    for n in notices:
        groups.setdefault(n.deployment or "devscale", []).append(n)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {
        "type": "plain_text", "text": cut(f"devscale · {namespace}: {summary(notices)}",
                                          MAX_HEADER)}}]
    names = list(groups)
    room = MAX_BLOCKS - 2   # the header, and a context line if some groups do not fit
    for name in names[:room]:
        body = "\n".join(_escape(line(n)) for n in groups[name])
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": cut(f"*{_escape(name)}*\n{body}", MAX_SECTION)}})
    if len(names) > room:
        blocks.append({"type": "context", "elements": [{
            "type": "mrkdwn", "text": f"… and {len(names) - room} more Deployments"}]})
    fallback = cut(f"devscale · {namespace}: " + "; ".join(n.title for n in notices),
                   MAX_SECTION)
    return {"text": fallback, "blocks": blocks}


def _escape(text: str) -> str:
    """Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_subject(namespace: str, notices: Sequence[Notice]) -> str:
    if len(notices) == 1:
        return cut(f"[devscale] {namespace}: {notices[0].title}", SUBJECT_LIMIT)
    return cut(f"[devscale] {namespace}: {summary(notices)}", SUBJECT_LIMIT)


def email_text(namespace: str, notices: Sequence[Notice]) -> str:
    lines = [f"devscale, namespace {namespace}:", ""]
    for n in notices:
        lines.append(f"- [{n.severity}] {n.title}")
        if n.text:
            lines.append(f"  {n.text}")
    lines += ["", "Details: the Deployment's Events (kubectl describe deployment NAME), "
              "or devscale check --dry-run."]
    return "\n".join(lines) + "\n"


def email_html(namespace: str, notices: Sequence[Notice]) -> str:
    colours = {"info": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828"}
    rows = "".join(
        f'<tr><td style="color:{colours[n.severity]};font-weight:bold">{n.severity}</td>'
        f"<td>{html.escape(n.title)}</td><td>{html.escape(n.text)}</td></tr>"
        for n in notices)
    return (f"<html><body><h2>devscale · {html.escape(namespace)}</h2>"
            '<table cellpadding="6" style="border-collapse:collapse">'
            f"<tr><th>severity</th><th>what</th><th>details</th></tr>{rows}</table>"
            "</body></html>")
