"""workers/client.py's Patience, pure: a broken stream tries every address of a round at once,
backs off only after a whole round failed, and gives up on time without progress, not on a count
of failures (a dead replica's instant refusals cost nothing)."""

from __future__ import annotations

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.workers.client import Patience


def patience(addresses: int, budget: float = 60.0) -> Patience:
    return Patience(addresses, budget, Backoff(0.5, 5.0), now=100.0)


def test_the_other_address_is_called_at_once_and_the_backoff_follows_a_failed_round() -> None:
    p = patience(2)
    assert p.failed(100.0) == 0.0         # A refused: B at once
    assert p.failed(100.1) == 0.5         # B failed too: wait, then A again
    assert p.failed(100.6) == 0.0
    assert p.failed(100.7) == 1.0
    assert p.failures == 4


def test_a_dead_address_refusing_at_once_never_gives_up_on_a_build_still_alive() -> None:
    """The flake of the durable tests: A dead (refuses at once), B slow for ~12 s while it
    adopts; six failures in a row used to end the client with exit 9."""
    p = patience(2)
    now = 100.0
    for _ in range(6):                     # A and B each fail three times within ~12 s
        delay = p.failed(now)
        assert delay is not None
        now += delay + 0.01
    assert now - 100.0 < 15
    p.progress(now)                        # B answers: the budget starts over
    assert p.failures == 0
    assert p.failed(now) == 0.0 and p.failed(now) == 0.5


def test_it_gives_up_once_the_budget_is_spent_without_progress() -> None:
    p = patience(2, budget=20.0)
    now, delays = 100.0, []
    while (delay := p.failed(now)) is not None:
        delays.append(delay)
        now += delay
    assert now - 100.0 == 20.0             # the last wait is cut to what is left of the budget
    assert delays == [0.0, 0.5, 0.0, 1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 5.0, 0.0, 5.0, 0.0, 2.5, 0.0]
    assert p.failures == 16


def test_it_gives_up_only_after_a_whole_round() -> None:
    p = patience(3, budget=1.0)
    assert p.failed(200.0) == 0.0          # long past the budget, but B and C untried
    assert p.failed(200.0) == 0.0
    assert p.failed(200.0) is None


def test_one_address_waits_after_each_failure() -> None:
    p = patience(1, budget=2.0)
    assert [p.failed(100.0), p.failed(100.5), p.failed(101.5), p.failed(102.0)] == [
        0.5, 1.0, 0.5, None]


def test_progress_resets_the_backoff() -> None:
    p = patience(1)
    assert [p.failed(100.0), p.failed(100.5), p.failed(101.5)] == [0.5, 1.0, 2.0]
    p.progress(103.5)
    assert p.failed(103.6) == 0.5
    assert p.since == 103.5
