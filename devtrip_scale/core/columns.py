"""kubectl-shaped lines: ages as kubectl prints them, cells cut at word boundaries with `…`, and
columns laid out to a width (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from rich.cells import cell_len
from rich.text import Text

KEEP = 10_000    # a floor that gives nothing in its round
GAP = 3          # spaces between columns, as kubectl's tabwriter pads them
ELLIPSIS = "…"


def age(delta: timedelta) -> str:
    """A duration as `kubectl get` prints an AGE (k8s.io/apimachinery duration.HumanDuration):
    `45s`, `3m20s`, `12m`, `2h30m`, `10h`, `3d4h`, `20d`, `2y3d`."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def fit(text: str, width: int) -> str:
    """`text` in at most `width` cells: whole when it fits, else cut at the last word (or field)
    boundary that leaves room for `…`; a single word longer than the room is cut inside it."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    room = width - 1
    head = text
    while cell_len(head) > room:
        head = head[:-1]
    cut = max(head.rfind(" "), head.rfind(","), head.rfind(";"), head.rfind("("),
              head.rfind(":"))
    if text[len(head)] in " ,;:(":
        cut = len(head)                 # the room ends at a boundary: keep the whole word
    if cut > 0 and cut >= room // 3:   # a boundary not too far back: cut there
        head = head[:cut]
    return head.rstrip(" ,;:(") + ELLIPSIS


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken only between words; a word longer than
    a whole line (a URL, a PromQL query) gets lines of its own, cut at the width."""
    width = max(width, 8)
    lines: list[str] = []
    line = ""
    for word in text.split():
        while cell_len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif cell_len(line) + 1 + cell_len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Cell:
    """One cell: its text and a rich style (dropped where colour is off)."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Column:
    """A header and how narrow the layout may make it: `floors` are the widths it gives way to,
    one per round (never below its header); a column without floors is never cut."""

    header: str
    floors: tuple[int, ...] = ()


def widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Each column's width: as wide as its content, then, round by round (`floors[k]` in round
    k) and right to left within a round, narrowed to that round's floor until a line fits
    `width`. A floor of KEEP leaves the column alone in its round."""
    out = [max([cell_len(c.header)] + [cell_len(r[i].text) for r in rows])
           for i, c in enumerate(columns)]
    over = sum(out) + GAP * (len(out) - 1) - width
    rounds = max((len(c.floors) for c in columns), default=0)
    for k in range(rounds):
        for i in reversed(range(len(columns))):
            c = columns[i]
            if over <= 0:
                return out
            if k >= len(c.floors):
                continue
            floor = max(c.floors[k], cell_len(c.header))
            give = min(over, max(out[i] - floor, 0))
            out[i] -= give
            over -= give
    return out


def line(cells: Sequence[Cell], sizes: Sequence[int]) -> Text:
    """One line: each cell cut to its column (at a word boundary) and padded; the last cell is
    not padded, so no line carries trailing spaces."""
    text = Text()
    last = len(cells) - 1
    for i, (cell, size) in enumerate(zip(cells, sizes, strict=True)):
        shown = fit(cell.text, size)
        text.append(shown, style=cell.style or None)
        if i < last:
            text.append(" " * (size - cell_len(shown) + GAP))
    text.rstrip()
    return text


def table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[Text]:
    """The header and one line per row, every line at most `width` cells (bar columns that may
    not shrink)."""
    sizes = widths(columns, rows, width)
    header = [Cell(c.header) for c in columns]
    return [line(header, sizes), *(line(r, sizes) for r in rows)]
