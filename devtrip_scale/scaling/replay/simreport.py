"""Simulation outcomes as a summary table, a terminal timeline, a JSON document and a chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling.replay.simulate import Outcome

BARS = "▁▂▃▄▅▆▇█"


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def summary(runs: Sequence[tuple[str, dict[str, Outcome]]]) -> RenderableType:
    """One row per Deployment per config: what the policy did and what it cost.

    Gaps in the recording get a column of their own and a warning line each: the figures leave
    their time out, so a reader must know the figures cover less than the period.
    """
    t = Table(title="devscale simulate", title_justify="left", show_lines=len(runs) > 1)
    any_gap = any(o.gaps for _, outcomes in runs for o in outcomes.values())
    columns = ["Deployment", "Config", "Scale events (↑/↓)", "Replica-hours", "Over target",
               "At max", "Largest gap"] + (["Not measured (gaps)"] if any_gap else [])
    for column in columns:
        t.add_column(column, overflow="fold")
    names = sorted({name for _, outcomes in runs for name in outcomes})
    for name in names:
        for label, outcomes in runs:
            o = outcomes.get(name)
            if o is None:
                continue
            over = ", ".join(f"{m} {duration(s)}" for m, s in o.seconds_over_target.items() if s)
            gap = f"{o.largest_gap} replicas at {o.largest_gap_at:%Y-%m-%d %H:%M}" \
                if o.largest_gap_at else "0"
            row = [name, label, f"{o.scale_ups + o.scale_downs} ({o.scale_ups}/"
                   f"{o.scale_downs})", f"{o.replica_hours:.1f}", over or "never",
                   duration(o.seconds_at_max), gap]
            if any_gap:
                row.append(f"{duration(o.seconds_unmeasured)} ({len(o.gaps)} gap"
                           f"{'' if len(o.gaps) == 1 else 's'})" if o.gaps else "0m")
            t.add_row(*row)
    parts: list[RenderableType] = [t]
    for name in names:
        first = next(o for _, outcomes in runs if (o := outcomes.get(name)))
        for a, b in first.gaps:
            parts.append(Text(
                f"warning: {name}: no sample from {a:%Y-%m-%d %H:%M:%S} to {b:%Y-%m-%d %H:%M:%S}"
                f" UTC ({duration((b - a).total_seconds())}): replayed without readings "
                "(replicas held) and left out of the figures", style="yellow"))
    return Group(*parts)


def sparkline(values: Sequence[float | None], width: int, top: float) -> str:
    """Values resampled to `width` columns (the max of each bucket), drawn with block glyphs."""
    if not values:
        return ""
    out = []
    columns = min(width, len(values))
    for c in range(columns):
        chunk = values[c * len(values) // columns:(c + 1) * len(values) // columns]
        bucket = [v for v in chunk if v is not None]
        if not bucket:
            out.append(" ")
            continue
        level = min(max(bucket) / top, 1.0) if top else 0.0
        out.append(BARS[min(int(level * (len(BARS) - 1) + 0.5), len(BARS) - 1)])
    return "".join(out)


@dataclass(frozen=True)
class Line:
    """One line of a chart: what it is, its points, how it is drawn."""

    label: str
    kind: Literal["demand", "replicas", "limit"]
    times: list[datetime]
    values: list[float | None]
    style: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    """One Deployment's chart: every line on one absolute scale of replicas."""

    deployment: str
    title: str
    lines: list[Line]
    ylabel: str = "replicas"
    xlabel: str = "time (UTC)"

    @property
    def top(self) -> float:
        """The highest value of any line: the full height of the scale."""
        return max((v for line in self.lines for v in line.values if v is not None),
                   default=1.0) or 1.0


# Overlapping configs stay visible: the first is a wide pale band, the next ones thinner and
# dashed on top of it.
_CONFIG_STYLES: tuple[dict[str, Any], ...] = (
    {"color": "#1f77b4", "linewidth": 4.0, "alpha": 0.55, "linestyle": "-"},
    {"color": "#d62728", "linewidth": 1.8, "alpha": 1.0, "linestyle": (0, (5, 2))},
    {"color": "#2ca02c", "linewidth": 1.4, "alpha": 1.0, "linestyle": (0, (1, 1.5))},
    {"color": "#9467bd", "linewidth": 1.2, "alpha": 1.0, "linestyle": (0, (6, 2, 1, 2))},
)


def chart(runs: Sequence[tuple[str, dict[str, Outcome]]]) -> list[Panel]:
    """What the chart and the sparklines show, per Deployment (pure: tested without pixels).

    The demand (the replicas the load asks for: the highest metric's reading ÷ target, unrounded
    and not clamped to maxReplicas) against each config's replicas, on one scale of replicas,
    with each config's maxReplicas. A config whose targets make a different demand gets its own
    demand line.
    """
    panels = []
    for name in sorted({n for _, outcomes in runs for n in outcomes}):
        present = [(label, o) for label, outcomes in runs if (o := outcomes.get(name))]
        lines: list[Line] = []
        demands: list[list[float | None]] = []
        for label, o in present:
            values = [s.demand for s in o.steps]
            if values in demands:
                continue
            demands.append(values)
            lines.append(Line("demand: replicas the load asks for" if len(demands) == 1 and
                              label == present[0][0] else f"demand under {label}", "demand",
                              [s.at for s in o.steps], list(values),
                              {"color": "#444444" if len(demands) == 1 else "#ff7f0e",
                               "linewidth": 1.0, "linestyle": "-", "zorder": 3}))
        for i, (label, o) in enumerate(present):
            lines.append(Line(f"replicas: {label}", "replicas", [s.at for s in o.steps],
                              [float(s.desired) for s in o.steps],
                              dict(_CONFIG_STYLES[i % len(_CONFIG_STYLES)])))
        tops = sorted({o.max_replicas for _, o in present})
        for top in tops:
            users = [label for label, o in present if o.max_replicas == top]
            start, end = present[0][1].steps[0].at, present[0][1].steps[-1].at
            lines.append(Line(f"maxReplicas {top}" + ("" if len(tops) == 1 else
                                                      f" ({', '.join(users)})"),
                              "limit", [start, end], [float(top), float(top)],
                              {"color": "#888888", "linewidth": 0.9, "linestyle": ":"}))
        panels.append(Panel(name, f"{name}: the replicas the load asks for against each "
                                  "config's replicas", lines))
    return panels


def timelines(runs: Sequence[tuple[str, dict[str, Outcome]]], width: int = 72
              ) -> RenderableType:
    """The chart's demand and replica lines as sparklines on one scale (full height: the top)."""
    parts: list[RenderableType] = []
    for panel in chart(runs):
        drawn = [line for line in panel.lines if line.kind != "limit"]
        start, end = drawn[0].times[0], drawn[0].times[-1]
        top = panel.top
        parts.append(Text(f"\n{panel.deployment}  {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"
                          f" UTC; full height = {top:.3g} replicas", style="bold"))
        for line in drawn:
            present = [v for v in line.values if v is not None]
            span = f"{min(present):.3g}–{max(present):.3g}" if present else "no reading"
            label = "demand" if line.kind == "demand" and line.label.startswith("demand:") \
                else line.label.removeprefix("replicas: ")
            parts.append(Text(f"  {label[:12]:<12} {sparkline(line.values, width, top)}  "
                              f"({span})", style="yellow" if line.kind == "demand" else "cyan"))
    return Group(*parts)


def to_dict(runs: Sequence[tuple[str, dict[str, Outcome]]]) -> dict[str, Any]:
    return {"configs": [{"config": label, "deployments": [
        {"name": o.deployment, "scaleUps": o.scale_ups, "scaleDowns": o.scale_downs,
         "replicaHours": round(o.replica_hours, 3),
         "secondsOverTarget": o.seconds_over_target, "secondsAtMax": o.seconds_at_max,
         "largestGap": o.largest_gap,
         "largestGapAt": o.largest_gap_at.isoformat() if o.largest_gap_at else None,
         "gaps": [{"from": a.isoformat(), "to": b.isoformat(),
                   "seconds": (b - a).total_seconds()} for a, b in o.gaps],
         "secondsNotMeasured": o.seconds_unmeasured,
         "timeline": [{"time": s.at.isoformat(), "replicas": s.replicas, "desired": s.desired,
                       "reason": s.reason, "load": s.load, "demand": s.demand}
                      for s in o.steps]}
        for o in outcomes.values()]} for label, outcomes in runs]}


def _time_format(panel: Panel) -> str:
    times = [t for line in panel.lines for t in line.times]
    return "%H:%M" if max(times) - min(times) <= timedelta(days=1) else "%m-%d %H:%M"


def plot(runs: Sequence[tuple[str, dict[str, Outcome]]], path: Path) -> None:
    """A chart per Deployment (demand against replicas), as PNG or SVG by the file's suffix."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png or .svg")
    import matplotlib.pyplot as plt

    fig = draw(chart(runs))
    try:
        fig.savefig(path)
    except OSError as e:
        raise ConfigError(f"--plot {path}: cannot write the chart: {e.strerror or e}") from None
    finally:
        plt.close(fig)


def draw(panels: Sequence[Panel]) -> Any:
    """The matplotlib Figure of the panels: one Axes each, every line labelled in the legend."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'devtrip-scale[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for line in panel.lines:
            values = [float("nan") if v is None else v for v in line.values]
            if line.kind == "replicas":
                ax.step(line.times, values, where="post", label=line.label, **line.style)
            else:
                ax.plot(line.times, values, label=line.label, **line.style)
        ax.xaxis.set_major_formatter(
            mdates.DateFormatter(_time_format(panel), tz=UTC))  # type: ignore[no-untyped-call]
        ax.set_ylim(0, panel.top * 1.08)
        ax.set_ylabel(panel.ylabel)
        ax.set_xlabel(panel.xlabel)
        ax.set_title(panel.title)
        ax.grid(True, alpha=0.25)
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
