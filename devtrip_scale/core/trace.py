"""A record of what one run did (PromQL sent, API calls, timings), shown by `--debug`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class TraceEntry:
    kind: str
    detail: str
    millis: float
    outcome: str = "ok"


@dataclass
class Trace:
    """Collects entries; adapters add one per request. Never given secrets."""

    entries: list[TraceEntry] = field(default_factory=list)

    @contextmanager
    def span(self, kind: str, detail: str) -> Iterator[TraceEntry]:
        entry = TraceEntry(kind, detail, 0.0)
        start = time.perf_counter()
        try:
            yield entry
        except BaseException as e:
            status = getattr(e, "status", None)
            entry.outcome = f"HTTP {status}" if status else f"failed: {type(e).__name__}"
            raise
        finally:
            entry.millis = (time.perf_counter() - start) * 1000
            self.entries.append(entry)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)
