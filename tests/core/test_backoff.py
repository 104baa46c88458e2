"""core.backoff: the delays grow by the factor from the initial one up to the maximum; reset()
starts over; jitter stays within ±jitter of the nominal delay and never changes the growth; a
maximum below the initial delay caps from the second delay on (as the loops it replaced did)."""

from __future__ import annotations

import random

import pytest

from devtrip_scale.core.backoff import Backoff


def take(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next() for _ in range(n)]


@pytest.mark.parametrize(("initial", "maximum", "factor", "expected"), [
    (0.5, 30.0, 2.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
    (0.5, 15.0, 2.0, [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]),
    (0.1, 2.0, 2.0, [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]),
    (1.0, 10.0, 3.0, [1.0, 3.0, 9.0, 10.0, 10.0, 10.0, 10.0, 10.0]),
    (2.0, 2.0, 2.0, [2.0] * 8),
    (1.0, 0.5, 2.0, [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    (0.0, 5.0, 2.0, [0.0] * 8),
], ids=["watch-30s", "executor-15s", "logrelay-2s", "factor-3", "flat", "max-below-initial",
        "zero"])
def test_delays_grow_to_the_maximum(initial: float, maximum: float, factor: float,
                                    expected: list[float]) -> None:
    assert take(Backoff(initial, maximum, factor=factor), 8) == pytest.approx(expected)


def test_same_as_the_loops_it_replaced() -> None:
    """`min(b * 2 ** (n - 1), max)` (the client) and `b = min(b * 2, max)` (the others)."""
    backoff = Backoff(0.5, 5.0)
    assert take(backoff, 10) == [min(0.5 * 2 ** n, 5.0) for n in range(10)]


def test_current_is_the_next_delay_before_jitter() -> None:
    backoff = Backoff(0.5, 30.0, jitter=0.2)
    assert backoff.current == 0.5
    backoff.next()
    assert backoff.current == 1.0


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    take(backoff, 5)
    backoff.reset()
    assert backoff.current == 0.5
    assert take(backoff, 3) == [0.5, 1.0, 2.0]


def test_jitter_stays_within_its_band_and_keeps_the_growth() -> None:
    backoff = Backoff(0.5, 30.0, jitter=0.2, rng=random.Random(7))
    nominal = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    delays = take(backoff, 8)
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.8 <= delay <= expected * 1.2
    assert delays != pytest.approx(nominal)          # jittered, not the nominal values
    assert backoff.current == 30.0


def test_jitter_draws_as_the_loops_it_replaced() -> None:
    """uniform(1 - 0.2, 1 + 0.2) is the old `random.uniform(0.8, 1.2)`: the same draws."""
    backoff = Backoff(0.5, 30.0, jitter=0.2, rng=random.Random(3))
    old = random.Random(3)
    assert take(backoff, 4) == [b * old.uniform(0.8, 1.2) for b in (0.5, 1.0, 2.0, 4.0)]


def test_no_jitter_draws_nothing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    take(Backoff(0.5, 30.0, rng=rng), 5)
    assert rng.getstate() == state


@pytest.mark.parametrize("kwargs", [
    {"initial": -1.0, "maximum": 1.0}, {"initial": 1.0, "maximum": 2.0, "factor": 0.5},
    {"initial": 1.0, "maximum": 2.0, "jitter": 1.0}, {"initial": 1.0, "maximum": 2.0,
                                                      "jitter": -0.1},
], ids=["negative", "shrinking", "jitter-1", "jitter-negative"])
def test_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)
