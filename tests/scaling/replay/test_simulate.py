"""The replay: the seed's queue scenario through the same policy, cost and fit measured, ready
delay and utilisation rescaling, gaps in the recording, the demand; the chart's data and the
sparklines on one absolute scale; and the `simulate` command (table, JSON, compare, PNG/SVG,
durations without a unit refused, unpadded output when stdout is not a terminal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from devtrip_scale.cli import app
from devtrip_scale.scaling.config import Settings, load_config
from devtrip_scale.scaling.replay import simreport
from devtrip_scale.scaling.replay.recording import Recording, Series
from devtrip_scale.scaling.replay.simulate import Options, simulate
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


def test_a_gap_is_listed_replayed_without_readings_and_left_out_of_the_figures() -> None:
    times = [T0 + timedelta(minutes=i) for i in range(10)]
    times += [times[-1] + timedelta(hours=5, minutes=i) for i in range(10)]
    rec = Recording({"queue-worker": Series(times, {"waiting_jobs": [3.0] * 20}, None)})
    [o] = simulate(rec, QUEUE, Options(timedelta(minutes=1), start_replicas=3)).values()
    assert o.gaps == [(times[9], times[10])]
    assert o.seconds_unmeasured == 5 * 3600 - 300      # the last sample stands for 5 minutes
    # 3 replicas: 9 + 9 one-minute steps, the last sample's minute, and the 5 minutes the
    # sample before the gap stands for
    assert o.replica_hours == pytest.approx(3 * (9 + 9 + 1 + 5) / 60)
    inside = [s for s in o.steps if times[9] + timedelta(minutes=5) < s.at < times[10]]
    assert inside and {s.reason for s in inside} == {"NoMetrics"}


def test_no_gap_when_samples_are_as_far_apart_as_the_limit() -> None:
    times = [T0 + timedelta(minutes=5 * i) for i in range(4)]
    rec = Recording({"queue-worker": Series(times, {"waiting_jobs": [1.0] * 4}, None)})
    [o] = simulate(rec, QUEUE, Options(timedelta(minutes=1))).values()
    assert o.gaps == [] and o.seconds_unmeasured == 0


def test_demand_is_the_replicas_the_load_asks_for() -> None:
    settings = Settings.model_validate({
        "namespace": "devtrip", "targets": [{"deployment": "api"}],
        "scaling": {"minReplicas": 2, "maxReplicas": 10},
        "metrics": [{"name": "cpu", "preset": "cpu_utilization",
                     "target": {"type": "Utilization", "value": 70}},
                    {"name": "users", "query": "sum(users)",
                     "target": {"type": "AverageValue", "value": 100}}]})
    times = [T0 + timedelta(minutes=i) for i in range(3)]
    rec = Recording({"api": Series(times, {"cpu": [140.0, 35.0, None],
                                           "users": [43.0, 1052.0, None]}, [2, 2, 2])})
    [o] = simulate(rec, settings, Options(timedelta(minutes=1))).values()
    # 140 % of 2 pods is 4 pods' worth at 70 %, whatever the simulated pods; 1052 users ask 10.52
    assert [s.demand for s in o.steps] == [pytest.approx(4.0), pytest.approx(10.52), None]


def two_runs() -> list[tuple[str, dict[str, simreport.Outcome]]]:
    load = [0.0] * 2 + [2.0] * 2 + [5.0] * 2 + [0.0] * 8
    [a] = simulate(minutes(load), QUEUE, Options(timedelta(seconds=61))).values()
    [b] = simulate(minutes(load), QUEUE, Options(timedelta(seconds=61))).values()
    return [("slow.yaml", {"queue-worker": a}), ("same.yaml", {"queue-worker": b})]


def test_chart_plots_demand_against_each_configs_replicas_on_one_scale() -> None:
    runs = two_runs()
    [panel] = simreport.chart(runs)
    kinds = [(line.kind, line.label) for line in panel.lines]
    assert kinds == [("demand", "demand: replicas the load asks for"),
                     ("replicas", "replicas: slow.yaml"), ("replicas", "replicas: same.yaml"),
                     ("limit", "maxReplicas 3")]
    outcome = runs[0][1]["queue-worker"]
    demand, slow, same, _ = panel.lines
    assert demand.values == [s.demand for s in outcome.steps]
    assert max(v for v in demand.values if v is not None) == 5.0    # 5 jobs, 1 per pod: not 3
    assert slow.values == same.values == [float(s.desired) for s in outcome.steps]
    assert panel.top == 5.0                        # one absolute scale: demand above the max
    # the two identical configs stay visible: a wide band under a thin dashed line
    assert slow.style["linewidth"] > same.style["linewidth"]
    assert slow.style["linestyle"] != same.style["linestyle"]
    assert panel.ylabel == "replicas" and "UTC" in panel.xlabel


def test_a_config_with_other_targets_gets_its_own_demand_line() -> None:
    load = [4.0] * 5
    halved = QUEUE.model_copy(update={"metrics": tuple(
        m.model_copy(update={"target": m.target.model_copy(update={"value": 2})})
        for m in QUEUE.metrics)})
    runs = [(label, simulate(minutes(load), s, Options(timedelta(minutes=1))))
            for label, s in (("one.yaml", QUEUE), ("two.yaml", halved))]
    [panel] = simreport.chart(runs)
    demands = [line for line in panel.lines if line.kind == "demand"]
    assert [d.label for d in demands] == ["demand: replicas the load asks for",
                                          "demand under two.yaml"]
    assert [d.values[0] for d in demands] == [4.0, 2.0]


def test_sparklines_share_the_charts_scale() -> None:
    runs = two_runs()
    text = runner_console_text(simreport.timelines(runs, width=14))
    lines = {line.split()[0]: line.split()[1] for line in text.splitlines()[2:]}
    assert "full height = 5 replicas" in text
    assert lines["demand"] == simreport.sparkline(
        [s.demand for s in runs[0][1]["queue-worker"].steps], 14, 5.0)
    assert "█" in lines["demand"] and "█" not in lines["slow.yaml"]   # 3 of 5 is not full


def runner_console_text(renderable: object) -> str:
    import io

    from devtrip_scale.scaling.render import console

    buffer = io.StringIO()
    console(buffer).print(renderable)
    return buffer.getvalue()


def test_cli_reports_gaps_in_table_and_json(tmp_path: Path) -> None:
    csv = tmp_path / "holes.csv"
    rows = [T0 + timedelta(minutes=i) for i in range(5)]
    rows += [rows[-1] + timedelta(hours=5, minutes=i) for i in range(5)]
    csv.write_text("timestamp,waiting_jobs\n" + "".join(f"{t.isoformat()},2\n" for t in rows))
    base = ["simulate", "-c", str(ROOT / "config" / "queue-workers.yaml"), "--csv", str(csv),
            "-d", "queue-worker"]
    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    assert "Not measured (gaps)" in table.output and "4h55m (1 gap)" in table.output
    assert "warning: queue-worker: no sample from 2026-01-01 00:04:00 to 2026-01-01 05:04:00 " \
        "UTC (5h00m)" in table.output
    doc = json.loads(runner.invoke(app, [*base, "-o", "json"]).stdout)
    [dep] = doc["configs"][0]["deployments"]
    assert dep["gaps"] == [{"from": rows[4].isoformat(), "to": rows[5].isoformat(),
                            "seconds": 18000.0}]
    assert dep["secondsNotMeasured"] == 17700.0
    wide = runner.invoke(app, [*base, "--max-gap", "6h", "-o", "json"])
    assert json.loads(wide.stdout)["configs"][0]["deployments"][0]["gaps"] == []


@pytest.mark.parametrize("option", ["--interval", "--max-gap"])
def test_cli_refuses_a_duration_without_a_unit(option: str) -> None:
    result = runner.invoke(app, ["simulate", "-c", str(ROOT / "config" / "devtrip.yaml"),
                                 "--csv", str(ROOT / "examples" / "day.csv"), option, "2"])
    assert result.exit_code == 2
    assert "'2' has no unit: write 2s, 2m or 2h" in result.output


def test_cli_output_is_not_padded_when_stdout_is_not_a_terminal() -> None:
    result = runner.invoke(app, ["simulate", "-c", str(ROOT / "config" / "devtrip.yaml"),
                                 "--csv", str(ROOT / "examples" / "day.csv")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "devscale simulate"
    assert not [line for line in lines if line != line.rstrip()]
    assert max(len(line) for line in lines) < 150     # the table's own width, not 200


def test_the_figure_draws_the_chart_data_with_a_legend_entry_per_line() -> None:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    panels = simreport.chart(two_runs())
    fig = simreport.draw(panels)
    try:
        [ax] = fig.axes
        [panel] = panels
        drawn = ax.get_lines()
        assert [line.get_label() for line in drawn] == [line.label for line in panel.lines]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == \
            [line.label for line in panel.lines]
        for artist, line in zip(drawn, panel.lines, strict=True):
            ys = [None if y != y else float(y) for y in artist.get_ydata()]
            xs = list(artist.get_xdata())
            assert artist.get_drawstyle() == ("steps-post" if line.kind == "replicas"
                                              else "default")
            assert ys == line.values
            assert [mdates.num2date(x) if isinstance(x, float) else x for x in xs] == \
                line.times
        assert ax.get_ylim() == (0.0, pytest.approx(panel.top * 1.08))
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (UTC)", "replicas")
    finally:
        plt.close(fig)


SPREADSHEET_CSV = "\ufeffTimestamp;Deployment;Replicas;waiting_jobs\n" + "".join(
    f"{(T0 + timedelta(minutes=i)).isoformat()};queue-worker;1;{w}\n"
    for i, w in enumerate([0, 2, 5, 5, 0]))


@pytest.mark.parametrize(("text", "code", "message"), [
    pytest.param(SPREADSHEET_CSV, 0, "queue-worker", id="bom-Timestamp-semicolons"),
    pytest.param(SPREADSHEET_CSV.replace(";1;5", ";1;NaN", 1), 2,
                 ":4:4: waiting_jobs: 'NaN' is not a reading", id="nan"),
    pytest.param(SPREADSHEET_CSV.replace(";1;2", ";1.5;2"), 2,
                 ":3:3: replicas: '1.5' is not a whole number", id="fractional-replicas"),
    pytest.param(SPREADSHEET_CSV.replace(";1;2", ";-1;2"), 2,
                 ":3:3: replicas: '-1' is negative", id="negative-replicas"),
])
def test_cli_reads_spreadsheet_exports_and_refuses_bad_cells(tmp_path: Path, text: str,
                                                             code: int, message: str) -> None:
    csv = tmp_path / "export.csv"
    csv.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["simulate", "-c", str(ROOT / "config" / "queue-workers.yaml"),
                                 "--csv", str(csv), "--interval", "1m"])
    assert result.exit_code == code, result.output
    assert (f"{csv}{message}" if code else message) in result.output


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.integers(0, 6), st.floats(1, 400)), min_size=1,
                max_size=30),
       st.sampled_from(["Utilization", "Value", "AverageValue"]), st.floats(0.5, 120),
       st.integers(0, 8), st.booleans())
def test_a_stretch_at_once_measures_what_a_sample_at_a_time_does(
        samples: list[tuple[float, int, float]], kind: str, target: float, ready: int,
        rescale: bool) -> None:
    # the measure of a stretch of constant replicas, a column at once, against the same
    # arithmetic a sample at a time (the path taken where a reading or replica count is missing)
    from devtrip_scale.scaling.replay.simulate import _fit, _fit_each

    values: list[float | None] = [v for v, _, _ in samples]
    made: list[int | None] | None = [m for _, m, _ in samples] if rescale else None
    dts = [d for _, _, d in samples]
    wanted, seconds = _fit(values, dts, made, kind, target, ready)
    each, each_seconds = _fit_each(values, dts, made, kind, target, ready)
    assert wanted == each
    assert seconds == pytest.approx(each_seconds, rel=1e-12, abs=1e-9)
