"""workers/live.py: the pipeline view's state (stages, durations, log tails), its stage tree as
text, plain and JSON lines, and the sequence rules (repeat dropped, `missed` warned, gap
refused)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from devtrip_scale.core.errors import ApiError, ExitCode
from devtrip_scale.workers.live import (
    WAITING_SHOWN,
    Continuity,
    LiveState,
    LogRecord,
    Progress,
    fmt_duration,
    log_json,
    log_plain,
    progress_json,
    progress_line,
    result_json,
    stage_tree,
    summary,
    view,
)
from devtrip_scale.workers.progress import (
    BuildState,
    LogLine,
    ProgressEvent,
    StageState,
    StageStatus,
)

T0 = 1_800_000_000.0   # 2027-01-15 08:00:00 UTC
BUILD = "build-7"
S = StageState
PLAN = (StageStatus("lint", S.WAITING), StageStatus("test", S.WAITING),
        StageStatus("docs", S.WAITING),
        StageStatus("package", S.WAITING, needs=("lint", "test")),
        StageStatus("deploy", S.WAITING, needs=("package",)))


def ev(seconds: float, stage: str = "", state: StageState | None = None, *, attempt: int = 1,
       message: str = "", build: BuildState = BuildState.RUNNING,
       stages: tuple[StageStatus, ...] = ()) -> ProgressEvent:
    return ProgressEvent(T0 + seconds, BUILD, build, stage, state, attempt if stage else 0,
                         message=message, stages=stages)


# A build where lint and test run side by side, test fails once and passes on retry, docs fails
# for good, package and deploy are skipped because fail-fast stopped the build.
RECORDED = [
    ev(0, stages=PLAN),
    ev(1, "lint", S.RUNNING),
    ev(1, "test", S.RUNNING),
    ev(1, "docs", S.RUNNING),
    ev(4, "lint", S.SUCCEEDED),
    ev(5, "test", S.RETRYING, message="worker 0 exited 1; retry in 2s"),
    ev(7, "test", S.RUNNING, attempt=2),
    ev(9, "docs", S.FAILED, message="worker 0 exited 3 (attempt 1 of 1)"),
    ev(12, "test", S.SUCCEEDED, attempt=2),
    ev(12, "package", S.SKIPPED, attempt=0, message="docs failed (fail-fast)"),
    ev(12, "deploy", S.SKIPPED, attempt=0, message="package was skipped"),
    ev(12.5, build=BuildState.FAILED, message="stage docs failed"),
]


def folded(events: list[ProgressEvent]) -> LiveState:
    state = LiveState()
    for seq, e in enumerate(events, start=1):
        state.apply(Progress(seq, e))
    return state


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=100, color_system=None)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def line(seconds: float, stage: str, pod: str, text: str, stream: str = "stdout") -> LogLine:
    return LogLine(T0 + seconds, text, pod, task_id=f"{BUILD}-{stage}", build_id=BUILD,
                   stage=stage, stream=stream)


def test_the_final_tree_shows_each_stage_with_state_attempt_duration_and_why() -> None:
    state = folded(RECORDED)
    assert text_of(stage_tree(state, now=T0 + 100)) == "\n".join([
        "✗ build build-7  failed  12.5s",
        "├── ✓ lint  succeeded  3.0s",
        "├── ✓ test  succeeded  attempt 1  11.0s",   # counted from 0
        "├── ✗ docs  failed  8.0s  — worker 0 exited 3 (attempt 1 of 1)",
        "├── - package  skipped  — docs failed (fail-fast)",
        "└── - deploy  skipped  — package was skipped",
    ])
    assert state.exit_code is ExitCode.PIPELINE
    assert state.outcome() == ("build build-7 failed: stage docs failed; skipped: package, "
                               "deploy")
    assert text_of(summary(state, T0 + 100)).endswith(state.outcome())


def test_mid_build_the_view_shows_running_stages_and_their_log_tails() -> None:
    state = folded(RECORDED[:6])   # lint done, test retrying, docs running
    state.tail = 2
    for i, text in enumerate(["collecting", "building docs", "writing html"]):
        state.add_log(line(2 + i, "docs", "build-7-docs-0-1", text))
    state.add_log(line(2, "test", "build-7-test-0-1", "FAILED test_x", stream="stderr"))
    state.add_log(line(2, "lint", "build-7-lint-0-1", "lint is done: not shown"))
    assert text_of(view(state, now=T0 + 6)) == "\n".join([
        "▶ build build-7  running  6.0s",
        "├── ✓ lint  succeeded  3.0s",
        "├── ↻ test  retrying  5.0s  — worker 0 exited 1; retry in 2s",
        "├── ▶ docs  running  5.0s",
        "├── · package  waiting  needs lint, test",
        "└── · deploy  waiting  needs package",
        "logs of running stages:",
        "08:00:02 test/build-7-test-0-1 stderr | FAILED test_x",
        "08:00:03 docs/build-7-docs-0-1 | building docs",
        "08:00:04 docs/build-7-docs-0-1 | writing html",
    ])


def test_a_stage_that_runs_again_after_a_retry_drops_its_old_finish_and_message() -> None:
    state = folded(RECORDED[:7])
    test = state.stages["test"]
    assert (test.state, test.attempt, test.started, test.finished) == (S.RUNNING, 2, T0 + 1,
                                                                         None)
    assert test.message == "worker 0 exited 1; retry in 2s"   # kept until it ends
    assert "— " not in text_of(stage_tree(state, T0 + 8)).splitlines()[2]


def test_a_successful_build_exits_0() -> None:
    done = [ev(0, stages=PLAN[:1]), ev(1, "lint", S.RUNNING), ev(2, "lint", S.SUCCEEDED),
            ev(2, build=BuildState.SUCCEEDED)]
    state = folded(done)
    assert (state.exit_code, state.outcome()) == (ExitCode.OK, "build build-7 succeeded")
    assert result_json(state) == {"type": "result", "buildId": BUILD, "state": "succeeded",
                                  "exitCode": 0, "failedStages": [], "skippedStages": [],
                                  "warnings": []}


@pytest.mark.parametrize(("seq", "event", "expected"), [
    (2, RECORDED[1], "08:00:01 #2 stage lint running"),
    (7, RECORDED[6], "08:00:07 #7 stage test running (attempt 1)"),
    (6, RECORDED[5], "08:00:05 #6 stage test retrying: worker 0 exited 1; retry in 2s"),
    (12, RECORDED[11], "08:00:12 #12 build build-7 failed: stage docs failed"),
], ids=["stage-running", "second-attempt", "retrying-with-why", "build-level"])
def test_plain_progress_lines(seq: int, event: ProgressEvent, expected: str) -> None:
    assert progress_line(Progress(seq, event)) == expected


def test_progress_json_has_stable_camel_case_keys() -> None:
    doc = progress_json(Progress(6, RECORDED[5], missed=2))
    assert json.loads(json.dumps(doc)) == doc
    assert doc == {"type": "progress", "sequence": 6, "buildId": BUILD,
                   "time": "2027-01-15T08:00:05+00:00", "buildState": "running",
                   "stage": "test", "stageState": "retrying", "attempt": 0,
                   "workerIndex": None, "pod": None,
                   "message": "worker 0 exited 1; retry in 2s", "missed": 2, "stages": []}
    first = progress_json(Progress(1, RECORDED[0]))
    assert [s["name"] for s in first["stages"]] == ["lint", "test", "docs", "package", "deploy"]
    assert first["stages"][3] == {"name": "package", "state": "waiting", "attempt": None,
                                  "needs": ["lint", "test"], "workers": 1,
                                  "workersSucceeded": 0, "started": None, "finished": None,
                                  "message": ""}


def test_log_json_and_plain_line_carry_worker_stage_and_stream() -> None:
    record = LogRecord(41, line(3, "docs", "build-7-docs-0-1", "warning: x", "stderr"))
    assert log_json(record) == {"type": "log", "sequence": 41, "buildId": BUILD,
                                "time": "2027-01-15T08:00:03+00:00", "stage": "docs",
                                "taskId": "build-7-docs", "worker": "build-7-docs-0-1",
                                "index": 0, "attempt": 0, "container": "worker",
                                "stream": "stderr", "message": "warning: x", "missed": 0}
    assert log_plain(record.line) == "08:00:03 docs/build-7-docs-0-1 stderr | warning: x"


@pytest.mark.parametrize(("last", "seq", "missed", "keep", "warning"), [
    (0, 1, 0, True, None),
    (3, 4, 0, True, None),
    (3, 3, 0, False, None),
    (3, 2, 0, False, None),
    (3, 7, 3, True, "3 progress messages were lost before #7"),
    (0, 5, 4, True, "4 progress messages were lost before #5"),
], ids=["first", "next", "repeat-after-resume", "older", "missed-owned-up", "trimmed-at-start"])
def test_continuity_keeps_the_next_drops_repeats_and_warns_of_missed(
        last: int, seq: int, missed: int, keep: bool, warning: str | None) -> None:
    check = Continuity(last=last)
    kept, said = check.accept(seq, missed)
    assert kept is keep
    assert (said or "").startswith(warning or "")
    assert bool(said) is bool(warning)
    assert check.last == (seq if keep else last)


@pytest.mark.parametrize(("last", "seq", "missed", "span"), [
    (3, 5, 0, "4"),
    (3, 9, 0, "4-8"),
    (3, 9, 2, "4-8"),
    (0, 2, 0, "1"),
], ids=["one-silent", "several-silent", "missed-too-small", "first-missing"])
def test_a_gap_the_server_does_not_own_up_to_is_an_error(
        last: int, seq: int, missed: int, span: str) -> None:
    with pytest.raises(ApiError, match=f"skipped progress messages {span} without saying"):
        Continuity(last=last).accept(seq, missed)


def test_with_gap_checks_off_only_missed_counts() -> None:
    check = Continuity("log lines", check_gaps=False)
    assert check.accept(5) == (True, None)
    kept, said = check.accept(9, missed=1)
    assert kept and said is not None and said.startswith("1 log lines were lost")
    assert check.lost == 1


@pytest.mark.parametrize(("seconds", "text"), [
    (0.04, "0.0s"), (3, "3.0s"), (59.94, "59.9s"), (61, "1m01s"), (3600 + 120, "1h02m"),
], ids=["instant", "seconds", "under-a-minute", "minutes", "hours"])
def test_durations(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize(("event", "line"), [
    (ev(3, "lint", S.CANCELLED, message="cancelled"), "stage lint cancelled"),
    (ev(4, build=BuildState.CANCELLED, message="cancelled"), f"build {BUILD} cancelled"),
    (ev(4, build=BuildState.FAILED, message="stage docs failed"),
     f"build {BUILD} failed: stage docs failed"),
], ids=["stage", "build", "a-reason-is-kept"])
def test_a_state_is_said_once(event: ProgressEvent, line: str) -> None:
    assert progress_line(Progress(9, event)).split(" #9 ", 1)[1] == line


def worker_ev(seconds: float, index: int, word: str, attempt: int = 1) -> ProgressEvent:
    return ProgressEvent(T0 + seconds, BUILD, BuildState.RUNNING, "test", S.RUNNING, attempt,
                         index, f"w-{BUILD}-test-{index}-{attempt - 1}",
                         f"worker {index} {word}" + (f" (attempt {attempt - 1})"
                                                     if word == "running" else ""))


def test_the_live_worker_counts_follow_each_workers_events() -> None:
    plan = (StageStatus("test", S.WAITING, workers=4),)
    events = [ev(0, stages=plan), ev(1, "test", S.RUNNING)]
    events += [worker_ev(2, i, "running") for i in range(4)]

    def label() -> str:
        return stage_tree(folded(events), T0 + 9).children[0].label.plain  # type: ignore[union-attr]

    assert label().startswith("▶ test  running  0/4 workers succeeded, 4 running")
    events += [worker_ev(5, 0, "succeeded"), worker_ev(5, 3, "failed")]
    assert label().startswith("▶ test  running  1/4 workers succeeded, 2 running")
    events += [worker_ev(6, 1, "succeeded"), worker_ev(6, 2, "succeeded"),
               worker_ev(7, 3, "running", attempt=2), worker_ev(8, 3, "succeeded", attempt=2),
               ev(8, "test", S.SUCCEEDED, attempt=2)]
    assert label().startswith("✓ test  succeeded  attempt 1  4/4 workers succeeded  7.0s")


def test_attempts_are_counted_from_0_as_in_pod_names() -> None:
    line = progress_line(Progress(3, worker_ev(7, 3, "running", attempt=2)))
    assert line.endswith("stage test running (attempt 1) worker 3 w-build-7-test-3-1: "
                         "worker 3 running (attempt 1)")
    assert progress_json(Progress(3, worker_ev(7, 3, "running", attempt=2)))["attempt"] == 1


def test_a_waiting_worker_shows_its_phase_and_reason_until_it_runs() -> None:
    plan = (StageStatus("test", S.WAITING, workers=2),)
    why = "waiting 6s: Pending: Unschedulable: 0/1 nodes are available: 1 node(s) didn't " \
        "match Pod's node affinity/selector."
    events = [ev(0, stages=plan), ev(1, "test", S.RUNNING), worker_ev(7, 0, why),
              worker_ev(7, 1, why)]

    def label() -> str:
        return stage_tree(folded(events), T0 + 9).children[0].label.plain  # type: ignore[union-attr]

    assert label().startswith("▶ test  running  0/2 workers succeeded  8.0s  — worker 0 "
                              "waiting 6s: Pending: Unschedulable: 0/1 nodes are available: "
                              "1 node(s) didn't match Pod's")
    assert label().endswith("… (+1 more)")
    events.append(worker_ev(8, 0, "running"))
    assert label().endswith("— worker 1 " + why[:WAITING_SHOWN - 1] + "…")
    events.append(worker_ev(8, 1, "running"))
    assert label() == "▶ test  running  0/2 workers succeeded, 2 running  8.0s"
