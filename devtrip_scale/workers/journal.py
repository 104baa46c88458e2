"""A sequence-numbered, append-only record with live readers: a build's progress and its logs.

Every item gets the next sequence number (1, 2, 3 …). A reader asks for the items after a
sequence and gets them at its own pace, then waits for new ones until the journal is closed: a
slow reader is never skipped over, it only falls behind. Memory is bounded by `limit`; a reader
that asks for items already trimmed away is told how many it missed (`Missed`) before the first
item still kept, so a gap is always visible, never silent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Missed:
    """Items `first` to `last` (inclusive) were trimmed before this reader got them."""

    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class Journal(Generic[T]):
    """Items with sequence numbers from 1; the oldest are dropped past `limit`."""

    def __init__(self, limit: int = 100_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._items: deque[T] = deque()
        self._first = 1            # the sequence of _items[0]
        self._closed = False
        self._changed = asyncio.Event()    # set and replaced on every change

    @property
    def last(self) -> int:
        """The sequence of the newest item (0 before the first)."""
        return self._first + len(self._items) - 1

    @property
    def first(self) -> int:
        """The sequence of the oldest item still kept."""
        return self._first

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, item: T) -> int:
        """Add an item; its sequence number. Must be called from the event loop's thread."""
        if self._closed:
            raise RuntimeError("the journal is closed")
        self._items.append(item)
        while len(self._items) > self.limit:
            self._items.popleft()
            self._first += 1
        self._notify()
        return self.last

    def close(self) -> None:
        """No more items: readers end once they have read everything."""
        if not self._closed:
            self._closed = True
            self._notify()

    def items(self, after: int = 0) -> list[tuple[int, T]]:
        """The items kept after sequence `after`, now (no waiting)."""
        start = max(after + 1, self._first)
        return [(seq, self._items[seq - self._first]) for seq in range(start, self.last + 1)]

    async def wait(self, after: int) -> None:
        """Returns once there is an item after sequence `after`, or the journal is closed."""
        while self.last <= after and not self._closed:
            await self._changed.wait()

    async def read(self, after: int = 0, follow: bool = True
                   ) -> AsyncGenerator[tuple[int, T] | Missed, None]:
        """The items after sequence `after` in order, each as (sequence, item); a `Missed` first
        where some of them were trimmed. With `follow`, waits for more until the journal is
        closed; without, ends after the items there are now."""
        position = after
        while True:
            if position + 1 < self._first:
                yield Missed(position + 1, self._first - 1)
                position = self._first - 1
            if position < self.last:
                seq = position + 1
                item = self._items[seq - self._first]
                position = seq
                yield seq, item       # the reader's pace: nothing is read ahead for it
                continue
            if self._closed or not follow:
                return
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
