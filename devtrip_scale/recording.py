"""Recorded load for `simulate`: read from CSV (errors name line and column) or built from a
Prometheus range query, as per-Deployment time series."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devtrip_scale.errors import ConfigError
from devtrip_scale.sources.prometheus import finite_number

RESERVED = ("timestamp", "deployment", "replicas")


@dataclass
class Series:
    """One Deployment's recorded samples: times (sorted), per-metric values, maybe replicas."""

    times: list[datetime] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)
    replicas: list[int | None] | None = None


@dataclass
class Recording:
    """Recorded load per Deployment."""

    series: dict[str, Series] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return min(s.times[0] for s in self.series.values())

    @property
    def end(self) -> datetime:
        return max(s.times[-1] for s in self.series.values())


def parse_time(text: str) -> datetime:
    """ISO 8601 with a zone (a naive time is taken as UTC), or Unix seconds."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return at if at.tzinfo else at.replace(tzinfo=UTC)


def load_csv(path: Path, metrics: Sequence[str], default_deployment: str | None = None
             ) -> Recording:
    """Read `timestamp[,deployment][,replicas],<metric>…`; an empty cell is a missing reading."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the recording: {e.strerror or e}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        _check_header(path, header, metrics, default_deployment)
        col = {name: i for i, name in enumerate(header)}
        recording = Recording()
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ConfigError(f"{path}:{line}: {len(row)} cells, the header has "
                                  f"{len(header)}")
            name = row[col["deployment"]].strip() if "deployment" in col else default_deployment
            series = recording.series.setdefault(str(name), Series(
                values={m: [] for m in metrics},
                replicas=[] if "replicas" in col else None))
            try:
                at = parse_time(row[col["timestamp"]])
            except ValueError:
                raise ConfigError(f"{path}:{line}: timestamp: {row[col['timestamp']]!r} is "
                                  "neither ISO 8601 nor Unix seconds") from None
            if series.times and at <= series.times[-1]:
                raise ConfigError(f"{path}:{line}: timestamp: {row[col['timestamp']]} is not "
                                  f"after the previous row of {name}")
            series.times.append(at)
            for m in metrics:
                series.values[m].append(_cell(path, line, m, row[col[m]]))
            if series.replicas is not None:
                value = _cell(path, line, "replicas", row[col["replicas"]])
                series.replicas.append(None if value is None else int(value))
    if not recording.series:
        raise ConfigError(f"{path}: no rows")
    return recording


def _check_header(path: Path, header: list[str], metrics: Sequence[str],
                  default_deployment: str | None) -> None:
    if "timestamp" not in header:
        raise ConfigError(f"{path}:1: the header has no `timestamp` column")
    if "deployment" not in header and default_deployment is None:
        raise ConfigError(f"{path}:1: no `deployment` column: pass --deployment NAME to say "
                          "whose load this is")
    for m in metrics:
        if m not in header:
            raise ConfigError(f"{path}:1: no column for the config's metric {m!r} "
                              f"(columns: {', '.join(header)})")
    for h in header:
        if h not in metrics and h not in RESERVED:
            raise ConfigError(f"{path}:1: column {h!r} is not a metric of the config")


def _cell(path: Path, line: int, column: str, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{path}:{line}: {column}: {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def from_matrix(metric_results: dict[str, list[dict[str, object]]],
                replicas: list[dict[str, object]], metrics: Sequence[str],
                names: Sequence[str] = ()) -> Recording:
    """Build a recording from Prometheus range-query matrices, one per metric.

    Series carry a `deployment` label; a single series without one (a queue's depth) is shared
    by every Deployment seen. Samples missing at a timestamp are missing readings.
    """
    per_deployment: dict[str, dict[str, dict[float, float | None]]] = {}
    shared: dict[str, dict[float, float | None]] = {}
    for metric, matrix in metric_results.items():
        for series in matrix:
            labels = series.get("metric", {})
            samples = {float(ts): finite_number(v) for ts, v in series.get("values", [])}  # type: ignore[attr-defined]
            name = labels.get("deployment") if isinstance(labels, dict) else None
            if name is None:
                shared[metric] = samples
            else:
                per_deployment.setdefault(str(name), {})[metric] = samples
    counts: dict[str, dict[float, float | None]] = {}
    for series in replicas:
        labels = series.get("metric", {})
        if isinstance(labels, dict) and "deployment" in labels:
            counts[str(labels["deployment"])] = {
                float(ts): finite_number(v) for ts, v in series.get("values", [])}  # type: ignore[attr-defined]
    for name in names:   # Deployments the config names, for metrics they share (a queue)
        per_deployment.setdefault(name, {})
    recording = Recording()
    for name, by_metric in sorted(per_deployment.items()):
        columns = {m: by_metric.get(m, shared.get(m, {})) for m in metrics}
        stamps = sorted({ts for samples in columns.values() for ts in samples})
        if not stamps:
            continue
        replica_counts = counts.get(name)
        recording.series[name] = Series(
            times=[datetime.fromtimestamp(ts, UTC) for ts in stamps],
            values={m: [columns[m].get(ts) for ts in stamps] for m in metrics},
            replicas=None if replica_counts is None else [
                None if replica_counts.get(ts) is None else int(replica_counts[ts] or 0)
                for ts in stamps])
    return recording

