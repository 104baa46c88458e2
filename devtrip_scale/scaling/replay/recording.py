"""Recorded load for `simulate`: read from CSV (errors name line and column) or built from a
Prometheus range query, as per-Deployment time series."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.core.yamlfile import read_text
from devtrip_scale.scaling.sources.prometheus import finite_number

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
    except (OverflowError, OSError):
        raise ValueError(text) from None
    except ValueError:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return at if at.tzinfo else at.replace(tzinfo=UTC)


def load_csv(path: Path, metrics: Sequence[str], default_deployment: str | None = None
             ) -> Recording:
    """Read `timestamp[,deployment][,replicas],<metric>…`; an empty cell is a missing reading.

    Spreadsheet exports read as they come: a UTF-8 byte order mark, `Timestamp`/`Deployment`/
    `Replicas` in any case, `;` or tab separators. A NaN, a fractional or negative replica count
    is refused with file:line:column; so is every other cell that is not a reading.
    """
    text = _text(path)
    lines = text.splitlines()
    delimiter = _delimiter(lines[0] if lines else "")
    reader = csv.reader(lines, delimiter=delimiter)
    header = [_column_name(h) for h in next(reader, [])]
    _check_header(path, header, metrics, default_deployment)
    col = {name: i for i, name in enumerate(header)}
    recording = Recording()
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ConfigError(f"{path}:{line}: {len(row)} cells, the header has "
                              f"{len(header)}" + _separator_hint(delimiter, row))
        name = row[col["deployment"]].strip() if "deployment" in col else default_deployment
        series = recording.series.setdefault(str(name), Series(
            values={m: [] for m in metrics},
            replicas=[] if "replicas" in col else None))
        where = f"{path}:{line}:{col['timestamp'] + 1}: timestamp"
        try:
            at = parse_time(row[col["timestamp"]])
        except ValueError:
            raise ConfigError(f"{where}: {row[col['timestamp']]!r} is neither ISO 8601 nor "
                              "Unix seconds") from None
        if series.times and at <= series.times[-1]:
            raise ConfigError(f"{where}: {row[col['timestamp']]} is not after the previous "
                              f"row of {name}")
        series.times.append(at)
        for m in metrics:
            series.values[m].append(_number(path, line, col[m], m, row[col[m]], delimiter))
        if series.replicas is not None:
            series.replicas.append(_replicas(path, line, col["replicas"],
                                             row[col["replicas"]], delimiter))
    if not recording.series:
        raise ConfigError(f"{path}: no rows")
    return recording


def _text(path: Path) -> str:
    """The file's text without a byte order mark; not UTF-8 is refused with the line."""
    return read_text(path, "recording").removeprefix("\ufeff")


def _delimiter(header: str) -> str:
    """The separator of a header line: `,`, `;` or a tab, whichever it has most of."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column_name(text: str) -> str:
    name = text.strip()
    return name.lower() if name.lower() in RESERVED else name


def _separator_hint(delimiter: str, row: list[str]) -> str:
    if delimiter == ";" and any("," in cell for cell in row):
        return " (the file is `;`-separated: write decimals with a point, 1.5 not 1,5)"
    return ""


def _check_header(path: Path, header: list[str], metrics: Sequence[str],
                  default_deployment: str | None) -> None:
    if "timestamp" not in header:
        raise ConfigError(f"{path}:1: the header has no `timestamp` column (columns: "
                          f"{', '.join(header)}; separators `,`, `;` or tab)")
    if "deployment" not in header and default_deployment is None:
        raise ConfigError(f"{path}:1: no `deployment` column: pass --deployment NAME to say "
                          "whose load this is")
    for m in metrics:
        if m not in header:
            raise ConfigError(f"{path}:1: no column for the config's metric {m!r} "
                              f"(columns: {', '.join(header)})")
    for i, h in enumerate(header):
        if h not in metrics and h not in RESERVED:
            raise ConfigError(f"{path}:1:{i + 1}: column {h!r} is not a metric of the config")
        if h in header[:i]:
            raise ConfigError(f"{path}:1:{i + 1}: column {h!r} appears twice")


def _number(path: Path, line: int, index: int, column: str, text: str, delimiter: str
            ) -> float | None:
    """A cell as a finite number, None when empty; anything else names file:line:column."""
    text = text.strip()
    if not text:
        return None
    where = f"{path}:{line}:{index + 1}: {column}"
    try:
        value = float(text)
    except ValueError:
        hint = " (write decimals with a point)" if delimiter == ";" and "," in text else ""
        raise ConfigError(f"{where}: {text!r} is not a number{hint}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {text!r} is not a reading; leave the cell empty for a "
                          "missing one")
    return value


def _replicas(path: Path, line: int, index: int, text: str, delimiter: str) -> int | None:
    value = _number(path, line, index, "replicas", text, delimiter)
    if value is None:
        return None
    where = f"{path}:{line}:{index + 1}: replicas"
    if value < 0:
        raise ConfigError(f"{where}: {text.strip()!r} is negative; a replica count is 0 or more")
    if value != int(value):
        raise ConfigError(f"{where}: {text.strip()!r} is not a whole number of replicas")
    return int(value)


def from_matrix(metric_results: dict[str, list[dict[str, object]]],
                replicas: list[dict[str, object]], metrics: Sequence[str],
                names: Sequence[str] = ()) -> Recording:
    """Build a recording from Prometheus range-query matrices, one per metric.

    Series carry a `deployment` label; a single series without one (a queue's depth) is shared
    by every Deployment seen; a preset's pod-count series (`devscale_series`) is left out.
    Samples missing at a timestamp are missing readings.
    """
    per_deployment: dict[str, dict[str, dict[float, float | None]]] = {}
    shared: dict[str, dict[float, float | None]] = {}
    for metric, matrix in metric_results.items():
        for series in matrix:
            labels = series.get("metric", {})
            samples = {float(ts): finite_number(v) for ts, v in series.get("values", [])}  # type: ignore[attr-defined]
            name = labels.get("deployment") if isinstance(labels, dict) else None
            if isinstance(labels, dict) and "devscale_series" in labels:
                continue   # the pods behind a value (a replay takes every replica as sampled)
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

