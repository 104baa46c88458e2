"""The replay: the seed's queue scenario through the same policy, cost and fit measured, ready
delay and utilisation rescaling, and the `simulate` command (table, JSON, compare, PNG/SVG)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devtrip_scale.cli import app
from devtrip_scale.config import Settings, load_config
from devtrip_scale.recording import Recording, Series
from devtrip_scale.simulate import Options, simulate
from tests.conftest import ROOT

T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUEUE = load_config(ROOT / "config" / "queue-workers.yaml", env={})


def minutes(values: list[float | None], name: str = "waiting_jobs",
            replicas: list[int | None] | None = None) -> Recording:
    times = [T0 + timedelta(minutes=i) for i in range(len(values))]
    return Recording({"queue-worker": Series(times, {name: values}, replicas)})


def test_seed_queue_scenario() -> None:
    load = [0.0] * 2 + [2.0] * 2 + [5.0] * 2 + [0.0] * 8
    [o] = simulate(minutes(load), QUEUE, Options(timedelta(seconds=61))).values()
    # 2 waiting → 2, 5 → 3 (the max); empty at 366 s: the 300 s window holds 3 (the t=305
    # recommendation) until 605 s, then −50 % of 3 allows 1
    assert [s.desired for s in o.steps] == [1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 1, 1, 1]
    assert (o.scale_ups, o.scale_downs) == (2, 1)


def test_cost_and_time_over_target() -> None:
    # 5 jobs wait for 10 minutes; the worker is capped at 3: over target and at max most of it
    [o] = simulate(minutes([5.0] * 10), QUEUE, Options(timedelta(minutes=1))).values()
    assert o.seconds_over_target["waiting_jobs"] == 600
    assert o.largest_gap == 4                        # needs 5, has 1 at the start
    assert o.replica_hours == pytest.approx(sum(s.desired if s.desired == s.replicas else
                                                s.replicas for s in o.steps) / 60, rel=0.5)
    assert o.seconds_at_max > 0


def utilization_settings() -> Settings:
    return Settings.model_validate({
        "namespace": "devtrip", "targets": [{"deployment": "api"}],
        "scaling": {"minReplicas": 2, "maxReplicas": 10,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
        "metrics": [{"name": "cpu", "preset": "cpu_utilization",
                     "target": {"type": "Utilization", "value": 70}}]})


def test_utilisation_is_rescaled_to_the_simulated_pods() -> None:
    # Recorded at 2 pods and 140 %: the same demand on 4 pods reads 70 %, which holds.
    times = [T0 + timedelta(minutes=i) for i in range(6)]
    rec = Recording({"api": Series(times, {"cpu": [140.0] * 6}, [2] * 6)})
    [o] = simulate(rec, utilization_settings(), Options(timedelta(minutes=1))).values()
    assert [s.desired for s in o.steps] == [4, 4, 4, 4, 4, 4]


def test_ready_delay_keeps_the_load_high_until_pods_are_ready() -> None:
    times = [T0 + timedelta(minutes=i) for i in range(6)]
    rec = Recording({"api": Series(times, {"cpu": [140.0] * 6}, [2] * 6)})
    [o] = simulate(rec, utilization_settings(),
                   Options(timedelta(minutes=1), ready_delay=timedelta(minutes=3))).values()
    # While the 2 new pods start, the 2 ready ones still read 140 % and ask for 4 each time.
    assert [s.desired for s in o.steps][:4] == [4, 4, 4, 4]
    assert o.seconds_over_target["cpu"] == 180


def test_stale_recording_is_missing_not_zero() -> None:
    times = [T0, T0 + timedelta(minutes=10)]
    rec = Recording({"queue-worker": Series(times, {"waiting_jobs": [3.0, 3.0]}, None)})
    [o] = simulate(rec, QUEUE, Options(timedelta(minutes=1), start_replicas=3)).values()
    assert {s.reason for s in o.steps[6:10]} == {"NoMetrics"}
    assert all(s.desired == 3 for s in o.steps)


runner = CliRunner()


def test_cli_table_json_compare_and_plots(tmp_path: Path) -> None:
    day = ROOT / "examples" / "day.csv"
    base = ["simulate", "-c", str(ROOT / "config" / "devtrip.yaml"), "--csv", str(day)]
    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    assert "Replica-hours" in table.output and "api" in table.output
    fast = tmp_path / "fast.yaml"
    fast.write_text((ROOT / "config" / "devtrip.yaml").read_text().replace(
        "  tolerance: 0.1 ", "  tolerance: 0.1\n  behavior: {scaleDown: "
        "{stabilizationWindowSeconds: 60}} "))
    result = runner.invoke(app, [*base, "--compare", str(fast), "-o", "json", "--plot",
                                 str(tmp_path / "day.png")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [slow_api], [fast_api] = (c["deployments"] for c in doc["configs"])
    assert slow_api["replicaHours"] > fast_api["replicaHours"]   # a shorter window costs less
    assert (tmp_path / "day.png").read_bytes().startswith(b"\x89PNG")
    svg = runner.invoke(app, [*base, "--plot", str(tmp_path / "day.svg")])
    assert svg.exit_code == 0 and "<svg" in (tmp_path / "day.svg").read_text()[:2000]


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    cfg = str(ROOT / "config" / "devtrip.yaml")
    assert runner.invoke(app, ["simulate", "-c", cfg]).exit_code == 2
    bad = runner.invoke(app, ["simulate", "-c", cfg, "--csv", str(ROOT / "examples" /
                              "day.csv"), "--plot", str(tmp_path / "x.gif")])
    assert bad.exit_code == 2 and ".png or .svg" in bad.output
