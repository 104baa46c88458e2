"""Recorded load from CSV: the formats it reads (a BOM, `Timestamp` in any case, `;` or tab
separators), and each bad file refused with file:line:column (NaN, fractional or negative
replicas, not UTF-8, …)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling.replay.recording import from_matrix, load_csv, parse_time

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


BAD = [
    pytest.param("deployment,cpu,jobs\n", ":1: the header has no `timestamp` column",
                 id="no-timestamp"),
    pytest.param("timestamp,cpu,jobs\n", ":1: no `deployment` column", id="no-deployment"),
    pytest.param("timestamp,deployment,cpu\n", ":1: no column for the config's metric 'jobs'",
                 id="metric-missing"),
    pytest.param(HEADER.replace("jobs", "jobs,colour"), ":1:6: column 'colour' is not a metric",
                 id="unknown-column"),
    pytest.param(HEADER.replace("jobs", "jobs,cpu"), ":1:6: column 'cpu' appears twice",
                 id="column-twice"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,2,lots,1\n", ":2:4: cpu: 'lots' is not a "
                 "number", id="not-a-number"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,2,NaN,1\n", ":2:4: cpu: 'NaN' is not a "
                 "reading; leave the cell empty", id="nan"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,2,1,-inf\n", ":2:5: jobs: '-inf' is not a "
                 "reading", id="infinite"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,2.5,1,1\n", ":2:3: replicas: '2.5' is not a "
                 "whole number of replicas", id="fractional-replicas"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,-1,1,1\n", ":2:3: replicas: '-1' is "
                 "negative", id="negative-replicas"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,nan,1,1\n", ":2:3: replicas: 'nan' is not a "
                 "reading", id="nan-replicas"),
    pytest.param(HEADER + "yesterday,api,2,1,1\n", ":2:1: timestamp: 'yesterday' is neither",
                 id="bad-timestamp"),
    pytest.param(HEADER + "1e400,api,2,1,1\n", ":2:1: timestamp: '1e400' is neither",
                 id="timestamp-out-of-range"),
    pytest.param(HEADER + "2026-01-01T00:00:00Z,api,2,1\n", ":2: 4 cells, the header has 5",
                 id="short-row"),
    pytest.param(HEADER + "2026-01-01T00:01:00Z,api,2,1,1\n2026-01-01T00:00:00Z,api,2,1,1\n",
                 ":3:1: timestamp: 2026-01-01T00:00:00Z is not after the previous row of api",
                 id="time-goes-back"),
    pytest.param(HEADER.replace(",", ";") + "2026-01-01T00:00:00Z;api;2;1,5;1\n",
                 ":2:4: cpu: '1,5' is not a number (write decimals with a point)",
                 id="decimal-comma"),
    pytest.param(HEADER, ": no rows", id="no-rows"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files_name_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_csv(path, ["cpu", "jobs"])
    assert f"{path}{message}" in str(caught.value)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_bytes(HEADER.encode() + "2026-01-01T00:00:00Z,café,2,1,1\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"load\.csv:2: the file is not UTF-8 text \(byte 0xe9 "
                                          r"at offset \d+\); save it as UTF-8"):
        load_csv(path, ["cpu", "jobs"])


SPREADSHEET = [
    pytest.param("\ufefftimestamp,deployment,replicas,cpu,jobs\n", "utf-8", id="bom"),
    pytest.param("Timestamp,Deployment,REPLICAS,cpu,jobs\n", "utf-8", id="header-case"),
    pytest.param("\ufeffTimestamp;Deployment;Replicas;cpu;jobs\n", "utf-8", id="semicolons"),
    pytest.param("timestamp\tdeployment\treplicas\tcpu\tjobs\n", "utf-8", id="tabs"),
]


@pytest.mark.parametrize(("header", "encoding"), SPREADSHEET)
def test_spreadsheet_exports_read_as_written(tmp_path: Path, header: str, encoding: str
                                             ) -> None:
    sep = ";" if ";" in header else ("\t" if "\t" in header else ",")
    rows = [["2026-01-01T00:00:00Z", "api", "2", "140", ""], ["1767225630", "api", "3", "", "3"]]
    path = tmp_path / "load.csv"
    path.write_bytes((header + "".join(sep.join(r) + "\n" for r in rows)).encode(encoding))
    api = load_csv(path, ["cpu", "jobs"]).series["api"]
    assert api.values == {"cpu": [140.0, None], "jobs": [None, 3.0]}
    assert api.replicas == [2, 3]


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


def test_a_presets_pod_count_is_not_a_reading() -> None:
    # the presets join the pods behind each value with `or`: a range query returns both series
    t0 = 1767225600.0
    rec = from_matrix(
        {"cpu": [{"metric": {"deployment": "api"}, "values": [[t0, "140"]]},
                 {"metric": {"deployment": "api", "devscale_series": "pods"},
                  "values": [[t0, "2"]]}]},
        [], ["cpu"])
    assert rec.series["api"].values == {"cpu": [140.0]}
