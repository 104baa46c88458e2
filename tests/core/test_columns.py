"""columns.py: ages exactly as kubectl's duration.HumanDuration prints them, cells cut at a word
with `…`, lines wrapped between words, and column widths that give way in the stated order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devtrip_scale.core.columns import KEEP, Cell, Column, age, fit, table, widths, wrap


@pytest.mark.parametrize(("seconds", "shown"), [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"),
    (200, "3m20s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 1800,
                                                                          "3h30m"),
    (10 * 3600, "10h"), (47 * 3600, "47h"), (5 * 86400, "5d"), (3 * 86400 + 4 * 3600, "3d4h"),
    (20 * 86400, "20d"), (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
], ids=lambda v: str(v))
def test_ages_read_as_kubectl_prints_them(seconds: float, shown: str) -> None:
    assert age(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(("text", "width", "shown"), [
    ("DesiredWithinRange: cpu asks for 4", 80, "DesiredWithinRange: cpu asks for 4"),
    ("DesiredWithinRange: cpu asks for 4", 28, "DesiredWithinRange: cpu…"),
    ("memory is within the tolerance of its target", 20, "memory is within…"),
    ("payments-gateway-internal", 12, "payments-ga…"),
    ("abc", 1, "…"),
], ids=["fits", "at-a-word", "at-the-last-word", "one-long-word", "one-cell"])
def test_fit_cuts_at_a_word_with_an_ellipsis(text: str, width: int, shown: str) -> None:
    assert fit(text, width) == shown
    assert len(fit(text, width)) <= width


def test_wrap_breaks_between_words_and_cuts_only_what_no_line_holds() -> None:
    text = "error: Forbidden: deployments.apps is forbidden: cannot patch resource scale"
    lines = wrap(text, 24)
    assert " ".join(lines) == text and all(len(line) <= 24 for line in lines)
    assert wrap("x" * 30, 12) == ["x" * 12, "x" * 12, "x" * 6]


def test_columns_give_way_round_by_round_from_the_right() -> None:
    cols = [Column("NAME", (10,)), Column("METRIC", (KEEP, 6)), Column("REASON", (8, 4))]
    rows = [[Cell("a" * 20), Cell("cpu 140%/70%"), Cell("DesiredWithinRange: cpu asks")]]
    # natural: 20 + 12 + 28 + 2 gaps × 3 = 66
    assert widths(cols, rows, 100) == [20, 12, 28]
    assert widths(cols, rows, 60) == [20, 12, 22]        # REASON first
    assert widths(cols, rows, 40) == [14, 12, 8]         # REASON to its floor, then NAME
    assert widths(cols, rows, 30) == [10, 8, 6]          # the metric only in the last round
    lines = [line.plain for line in table(cols, rows, 40)]
    assert lines == ["NAME             METRIC         REASON",
                     "aaaaaaaaaaaaa…   cpu 140%/70%   Desired…"]
