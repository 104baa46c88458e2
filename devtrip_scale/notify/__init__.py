"""Notification fan-out: the Notifier protocol, the quiet period that keeps a notice from
repeating, and sending each channel what its routing asks for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from devtrip_scale.notify.notices import CONDITIONS as CONDITIONS
from devtrip_scale.notify.notices import KINDS as KINDS
from devtrip_scale.notify.notices import Kind as Kind
from devtrip_scale.notify.notices import Notice as Notice
from devtrip_scale.notify.notices import Severity as Severity


class Notifier(Protocol):
    name: str
    kinds: frozenset[Kind]

    def send(self, namespace: str, notices: Sequence[Notice]) -> None: ...


@dataclass
class NotifyState:
    """Across runs: when each key was last sent, and which conditions are still open."""

    last_sent: dict[str, datetime] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)   # key → title, for "resolved"

    def as_dict(self) -> dict[str, Any]:
        return {"lastSent": {k: v.isoformat() for k, v in self.last_sent.items()},
                "active": self.active}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotifyState:
        return cls({k: datetime.fromisoformat(v) for k, v in data["lastSent"].items()},
                   dict(data["active"]))

    def encode(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> NotifyState:
        return cls.from_dict(json.loads(text)) if text else cls()


def select(notices: Sequence[Notice], state: NotifyState, now: datetime,
           quiet: timedelta) -> tuple[list[Notice], NotifyState]:
    """Drop what was sent within the quiet period; add "resolved" for conditions that cleared.

    Returns the notices to send and the state to keep (pure).
    """
    current = {n.key: n for n in notices if n.kind in CONDITIONS}
    resolved = [Notice("recovered", "info", f"recovered:{key}", f"resolved: {title}",
                       "the condition has cleared", _deployment_of(key))
                for key, title in state.active.items() if key not in current]
    send = [n for n in notices
            if n.key not in state.last_sent or now - state.last_sent[n.key] >= quiet]
    send += resolved
    last_sent = {k: t for k, t in state.last_sent.items() if now - t < quiet}
    last_sent.update({n.key: now for n in send})
    for n in resolved:   # a condition that clears may be told again at once when it returns
        last_sent.pop(n.key.removeprefix("recovered:"), None)
    return send, NotifyState(last_sent, {k: n.title for k, n in current.items()})


def _deployment_of(key: str) -> str | None:
    """`held:web` names Deployment web; `failed:metric:cpu` and `failed:run:lock` name none."""
    rest = key.partition(":")[2]
    return rest if rest and ":" not in rest else None


def fan_out(namespace: str, notices: Sequence[Notice],
            notifiers: Sequence[Notifier]) -> list[str]:
    """Send each channel what its routing asks for; one failing channel does not stop others."""
    from devtrip_scale.core.errors import NotifyError

    failures = []
    for notifier in notifiers:
        mine = [n for n in notices if n.kind in notifier.kinds]
        if not mine:
            continue
        try:
            notifier.send(namespace, mine)
        except NotifyError as e:
            failures.append(f"{notifier.name}: {e}")
    return failures
