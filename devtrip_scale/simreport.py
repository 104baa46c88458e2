"""Simulation outcomes as a summary table, a terminal timeline, a JSON document and a chart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from devtrip_scale.errors import ConfigError
from devtrip_scale.simulate import Outcome

BARS = "▁▂▃▄▅▆▇█"


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def summary(runs: Sequence[tuple[str, dict[str, Outcome]]]) -> RenderableType:
    """One row per Deployment per config: what the policy did and what it cost."""
    t = Table(title="devscale simulate", title_justify="left", show_lines=len(runs) > 1)
    for column in ("Deployment", "Config", "Scale events (↑/↓)", "Replica-hours",
                   "Over target", "At max", "Largest gap"):
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
            t.add_row(name, label, f"{o.scale_ups + o.scale_downs} ({o.scale_ups}/"
                      f"{o.scale_downs})", f"{o.replica_hours:.1f}", over or "never",
                      duration(o.seconds_at_max), gap)
    return t


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


def timelines(runs: Sequence[tuple[str, dict[str, Outcome]]], width: int = 72
              ) -> RenderableType:
    """Load (highest reading/target, full height at 2× target) against replicas (full at max)."""
    parts: list[RenderableType] = []
    for name in sorted({n for _, outcomes in runs for n in outcomes}):
        first = next(o for _, outcomes in runs if (o := outcomes.get(name)))
        start, end = first.steps[0].at, first.steps[-1].at
        parts.append(Text(f"\n{name}  {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}",
                          style="bold"))
        parts.append(Text(f"  load      {sparkline([s.load for s in first.steps], width, 2.0)}",
                          style="yellow"))
        for label, outcomes in runs:
            o = outcomes.get(name)
            if o is not None:
                line = sparkline([float(s.desired) for s in o.steps], width, o.max_replicas)
                parts.append(Text(f"  {label[:9]:<9} {line}  (max {o.max_replicas})",
                                  style="cyan"))
    return Group(*parts)


def to_dict(runs: Sequence[tuple[str, dict[str, Outcome]]]) -> dict[str, Any]:
    return {"configs": [{"config": label, "deployments": [
        {"name": o.deployment, "scaleUps": o.scale_ups, "scaleDowns": o.scale_downs,
         "replicaHours": round(o.replica_hours, 3),
         "secondsOverTarget": o.seconds_over_target, "secondsAtMax": o.seconds_at_max,
         "largestGap": o.largest_gap,
         "largestGapAt": o.largest_gap_at.isoformat() if o.largest_gap_at else None,
         "timeline": [{"time": s.at.isoformat(), "replicas": s.replicas, "desired": s.desired,
                       "reason": s.reason, "load": s.load} for s in o.steps]}
        for o in outcomes.values()]} for label, outcomes in runs]}


def plot(runs: Sequence[tuple[str, dict[str, Outcome]]], path: Path) -> None:
    """A chart per Deployment (load against replicas), as PNG or SVG by the file's suffix."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png or .svg")
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'devtrip-scale[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({n for _, outcomes in runs for n in outcomes})
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 3.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        first = next(o for _, outcomes in runs if (o := outcomes.get(name)))
        load_ax = ax.twinx()
        load_ax.plot([s.at for s in first.steps],
                     [s.load if s.load is not None else float("nan") for s in first.steps],
                     color="#bbbbbb", linewidth=0.8, label="load (reading / target)")
        load_ax.axhline(1.0, color="#999999", linestyle=":", linewidth=0.8)
        load_ax.set_ylabel("load ÷ target")
        for label, outcomes in runs:
            o = outcomes.get(name)
            if o is not None:
                ax.step([s.at for s in o.steps], [s.desired for s in o.steps], where="post",
                        linewidth=1.6, label=f"replicas ({label})")
        ax.set_zorder(load_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylabel("replicas")
        ax.set_title(f"{name}: replicas against load")
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
