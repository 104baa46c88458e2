"""Recorded load from CSV: the formats it reads, and each bad file refused with line and column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtrip_scale.errors import ConfigError
from devtrip_scale.recording import from_matrix, load_csv, parse_time

HEADER = "timestamp,deployment,replicas,cpu,jobs\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "load.csv"
    path.write_text(text)
    return path


def test_reads_deployments_replicas_and_missing_cells(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-01-01T00:00:00Z,api,2,140,\n"
                 "1767225630,api,2,,3\n2026-01-01T00:00:00,web,4,50,1\n")
    rec = load_csv(path, ["cpu", "jobs"])
    api = rec.series["api"]
    assert api.times == [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 30,
                                                                      tzinfo=UTC)]
    assert api.values == {"cpu": [140.0, None], "jobs": [None, 3.0]}
    assert api.replicas == [2, 2]
    assert set(rec.series) == {"api", "web"}


def test_without_a_deployment_column_the_name_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,cpu\n2026-01-01T00:00:00Z,70\n")
    assert list(load_csv(path, ["cpu"], "api").series) == ["api"]


@pytest.mark.parametrize(("text", "message"), [
    ("deployment,cpu,jobs\n", ":1: the header has no `timestamp` column"),
    ("timestamp,cpu,jobs\n", ":1: no `deployment` column"),
    ("timestamp,deployment,cpu\n", ":1: no column for the config's metric 'jobs'"),
    (HEADER.replace("jobs", "jobs,colour"), ":1: column 'colour' is not a metric"),
    (HEADER + "2026-01-01T00:00:00Z,api,2,lots,1\n", ":2: cpu: 'lots' is not a number"),
    (HEADER + "yesterday,api,2,1,1\n", ":2: timestamp: 'yesterday' is neither"),
    (HEADER + "2026-01-01T00:00:00Z,api,2,1\n", ":2: 4 cells, the header has 5"),
    (HEADER + "2026-01-01T00:01:00Z,api,2,1,1\n2026-01-01T00:00:00Z,api,2,1,1\n",
     ":3: timestamp: 2026-01-01T00:00:00Z is not after the previous row of api"),
    (HEADER, ": no rows"),
])
def test_bad_files_name_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_csv(path, ["cpu", "jobs"])
    assert f"{path}{message}" in str(caught.value)


def test_naive_iso_time_is_utc() -> None:
    assert parse_time("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_from_prometheus_matrices() -> None:
    t0 = 1767225600.0
    rec = from_matrix(
        {"cpu": [{"metric": {"deployment": "api"}, "values": [[t0, "140"], [t0 + 30, "NaN"]]}],
         "jobs": [{"metric": {}, "values": [[t0, "3"], [t0 + 30, "4"]]}]},
        [{"metric": {"deployment": "api"}, "values": [[t0, "2"], [t0 + 30, "3"]]}],
        ["cpu", "jobs"], names=["worker"])
    assert rec.series["api"].values == {"cpu": [140.0, None], "jobs": [3.0, 4.0]}
    assert rec.series["api"].replicas == [2, 3]
    assert rec.series["worker"].values["jobs"] == [3.0, 4.0]     # shared queue depth
