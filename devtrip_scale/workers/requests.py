"""Stream entries as requests (pure): `scale_up` and `scale_down`, or the reason an entry is
refused and goes to the dead-letter stream.

An entry's fields: `type` (scale_up | scale_down), `task_id` (default: the entry's ID),
`pod_count` (scale_up only, 1..max), `metadata` (scale_up only, optional: a JSON object of
short string values, passed to the pods as env and labels). Any other field is refused, so a
misspelt `pod_cuont` is told instead of silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

FIELDS = frozenset({"type", "task_id", "pod_count", "metadata"})
MAX_TASK_ID = 253
MAX_METADATA = 16
MAX_META_VALUE = 1024
_META_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


@dataclass(frozen=True)
class ScaleUp:
    entry_id: str
    task_id: str
    pod_count: int
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScaleDown:
    entry_id: str
    task_id: str


@dataclass(frozen=True)
class Rejected:
    """An entry that can never be acted on: it is dead-lettered with `reason` and acked."""

    entry_id: str
    reason: str


Request = ScaleUp | ScaleDown


def parse(entry_id: str, fields: Mapping[str, str], max_pod_count: int) -> Request | Rejected:
    """The request an entry asks for, or why it is refused (pure; never raises)."""

    def no(reason: str) -> Rejected:
        return Rejected(entry_id, reason)

    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        return no(f"unknown field(s) {', '.join(map(repr, unknown))}; known: "
                  f"{', '.join(sorted(FIELDS))}")
    kind = fields.get("type")
    if kind not in ("scale_up", "scale_down"):
        return no(f"type {kind!r} is not scale_up or scale_down" if kind is not None
                  else "no type field: give type=scale_up or type=scale_down")
    task_id = fields.get("task_id", entry_id)
    if not task_id.strip() or len(task_id) > MAX_TASK_ID or not task_id.isprintable():
        return no(f"task_id {task_id[:80]!r} must be 1-{MAX_TASK_ID} printable characters")
    if kind == "scale_down":
        extra = sorted({"pod_count", "metadata"} & set(fields))
        if extra:
            return no(f"scale_down takes only task_id, not {', '.join(extra)}")
        if "task_id" not in fields:
            return no("scale_down needs the task_id of the task to cancel")
        return ScaleDown(entry_id, task_id)
    raw_count = fields.get("pod_count")
    if raw_count is None:
        return no("scale_up needs pod_count")
    if not raw_count.strip().isdigit():
        return no(f"pod_count {raw_count[:40]!r} is not a whole number")
    count = int(raw_count)
    if not 1 <= count <= max_pod_count:
        return no(f"pod_count {count} is outside 1..{max_pod_count}")
    metadata = _metadata(fields.get("metadata"))
    if isinstance(metadata, str):
        return no(metadata)
    return ScaleUp(entry_id, task_id, count, metadata)


def _metadata(text: str | None) -> tuple[tuple[str, str], ...] | str:
    """The metadata as sorted pairs, or the reason it is refused."""
    if text is None:
        return ()
    try:
        data = json.loads(text)
    except ValueError as e:
        return f"metadata is not JSON: {e}"
    if not isinstance(data, dict):
        return "metadata must be a JSON object of string values"
    if len(data) > MAX_METADATA:
        return f"metadata has {len(data)} keys; at most {MAX_METADATA}"
    pairs = []
    for key, value in data.items():
        if not _META_KEY.match(key):
            return (f"metadata key {key[:40]!r} must start with a letter and hold only letters, "
                    "digits and '_' (at most 31)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return f"metadata {key}: the value must be a string or a number"
        value = str(value)
        if len(value) > MAX_META_VALUE or not value.isprintable():
            return f"metadata {key}: the value must be ≤{MAX_META_VALUE} printable characters"
        pairs.append((key, value))
    return tuple(sorted(pairs))


def encode(request: Request) -> dict[str, str]:
    """The stream fields of a request (what `devscale workers submit` adds)."""
    if isinstance(request, ScaleDown):
        return {"type": "scale_down", "task_id": request.task_id}
    fields = {"type": "scale_up", "task_id": request.task_id,
              "pod_count": str(request.pod_count)}
    if request.metadata:
        fields["metadata"] = json.dumps(dict(request.metadata), separators=(",", ":"))
    return fields
