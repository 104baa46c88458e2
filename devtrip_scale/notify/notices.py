"""What a run tells people, as values: the kinds of notice, their severity and the Notice itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["scaled", "capacity_exhausted", "held", "failed", "recovered", "test"]
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[Kind, ...] = ("scaled", "capacity_exhausted", "held", "failed", "recovered", "test")
CONDITIONS: tuple[Kind, ...] = ("capacity_exhausted", "held", "failed")


@dataclass(frozen=True)
class Notice:
    """One thing worth telling, with the key that identifies it for the quiet period."""

    kind: Kind
    severity: Severity
    key: str
    title: str
    text: str
    deployment: str | None = None
