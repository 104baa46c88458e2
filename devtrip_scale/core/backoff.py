"""Reconnect backoff: the delays before each try again, growing from `initial` by `factor` up to
`maximum`, optionally jittered, and started over by `reset()` once something worked."""

from __future__ import annotations

import random


class Backoff:
    """The delays of one retrying loop.

    `current` is the next delay before jitter (what a message says: "again in 0.5s"); `next()`
    returns that delay, multiplied by a random factor in [1 - jitter, 1 + jitter] when `jitter`
    is set, and grows `current` for the time after. `rng` is for tests (default: the `random`
    module's generator).
    """

    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0,
                 jitter: float = 0.0, rng: random.Random | None = None) -> None:
        if initial < 0 or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(f"Backoff(initial={initial}, factor={factor}, jitter={jitter}): "
                             "need initial >= 0, factor >= 1 and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._uniform = rng.uniform if rng is not None else random.uniform
        self.current = initial

    def next(self) -> float:
        """The delay to wait now; the one after is `factor` times longer, at most `maximum`."""
        delay = self.current
        if self.jitter:
            delay *= self._uniform(1 - self.jitter, 1 + self.jitter)
        self.current = min(self.current * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        """Start over from `initial` (the connection works again)."""
        self.current = self.initial
