"""Run-level failures (pure, plus the memory file): told at once or after N runs held out by the
lock, quiet across runs, resolved by the next run that gets its report, and never sent without a
memory to keep the quiet period."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from devtrip_scale.core.errors import KubeError, LeaseHeld, MetricsError
from devtrip_scale.notify.runs import (
    LOCK_KEY,
    InProcessMemory,
    MemoryFile,
    RunAlerts,
    RunMemory,
    run_completed,
    run_failed,
)
from tests.conftest import NOW
from tests.fakes import RecordingNotifier

QUIET = timedelta(minutes=30)
HELD = LeaseHeld("another devscale run holds Lease devtrip/devscale-lock: loop-0, since …",
                 holder="loop-0, since 2026-11-22T11:50:00+00:00")
DOWN = KubeError("get leases/devscale-lock -n devtrip: API server unreachable")


def fail(memory: RunMemory, error: BaseException, minutes: float = 0, lock_runs: int = 3
         ) -> tuple[list[str], RunMemory]:
    sent, memory = run_failed(memory, error, NOW + timedelta(minutes=minutes), QUIET, lock_runs)
    return [n.key for n in sent], memory


def test_an_unreachable_api_is_told_once_per_quiet_period_then_resolved() -> None:
    sent, memory = fail(RunMemory(), DOWN)
    assert sent == ["failed:run:kubernetes"]
    assert fail(memory, DOWN, minutes=2)[0] == []          # the next cron run: quiet
    sent, memory = fail(memory, DOWN, minutes=30)
    assert sent == ["failed:run:kubernetes"]               # a reminder after the quiet period
    resolved, memory = run_completed(memory, NOW + timedelta(minutes=32), QUIET)
    assert [(n.kind, n.title, n.deployment) for n in resolved] == [
        ("recovered", "resolved: devscale could not use the Kubernetes API", None)]
    assert run_completed(memory, NOW + timedelta(minutes=34), QUIET)[0] == []


def test_the_lock_is_told_after_n_runs_in_a_row_and_a_good_run_restarts_the_count() -> None:
    memory = RunMemory()
    for minutes in (0, 2):
        sent, memory = fail(memory, HELD, minutes)
        assert sent == []
    sent, memory = run_failed(memory, HELD, NOW + timedelta(minutes=4), QUIET, 3)
    [notice] = sent
    assert (notice.key, notice.severity) == (LOCK_KEY, "warning")
    assert notice.text.startswith("3 runs in a row; the last: the Lease was held by loop-0, "
                                  "since 2026-11-22T11:50:00+00:00; another runner checks")
    assert "keep one" in notice.text
    assert fail(memory, HELD, 6)[0] == []                  # still held: quiet
    resolved, memory = run_completed(memory, NOW + timedelta(minutes=8), QUIET)
    assert [n.key for n in resolved] == [f"recovered:{LOCK_KEY}"]
    assert memory.locked_runs == 0
    assert fail(memory, HELD, 10)[0] == []                 # counting starts again


def test_another_failure_breaks_the_lock_streak() -> None:
    _, memory = fail(RunMemory(), HELD)
    _, memory = fail(memory, HELD, 2)
    _, memory = fail(memory, MetricsError("Prometheus unreachable"), 4)
    assert memory.locked_runs == 0
    assert fail(memory, HELD, 6)[0] == []


def test_a_different_failure_resolves_nothing_only_a_good_run_does() -> None:
    sent, memory = fail(RunMemory(), HELD, lock_runs=1)
    assert sent == [LOCK_KEY]
    sent, memory = fail(memory, DOWN, 2, lock_runs=1)
    assert sent == ["failed:run:kubernetes"]                # no "resolved" for the lock
    resolved, _ = run_completed(memory, NOW + timedelta(minutes=4), QUIET)
    assert sorted(n.key for n in resolved) == ["recovered:failed:run:kubernetes",
                                               f"recovered:{LOCK_KEY}"]


def test_a_crash_says_its_type_and_not_its_message() -> None:
    sent, _ = run_failed(RunMemory(), RuntimeError("token=abc"), NOW, QUIET, 3)
    [notice] = sent
    assert notice.title == "devscale check crashed"
    assert "RuntimeError" in notice.text and "abc" not in notice.text


def test_the_memory_round_trips_and_a_corrupt_file_starts_afresh(tmp_path: Path) -> None:
    _, memory = fail(RunMemory(), DOWN)
    assert RunMemory.decode(memory.encode()) == memory
    store = MemoryFile(tmp_path / "runs.json")
    assert store.read() == RunMemory()                     # no file yet
    store.path.write_text('{"lockedRuns": "x"')
    assert store.read() == RunMemory()
    assert store.update(lambda m: fail(m, DOWN)) == ["failed:run:kubernetes"]
    assert store.read().told.active == {"failed:run:kubernetes":
                                        "devscale could not use the Kubernetes API"}
    fresh = MemoryFile(tmp_path / "new" / "runs.json")
    fresh.update(lambda m: fail(m, DOWN))
    assert (fresh.path.stat().st_mode & 0o777, fresh.path.parent.stat().st_mode & 0o777) == (
        0o600, 0o700)                                      # the runner's own


def test_concurrent_updates_lose_no_count(tmp_path: Path) -> None:
    store = MemoryFile(tmp_path / "runs.json")

    def held_twenty_times() -> None:
        for _ in range(20):
            store.update(lambda m: fail(m, HELD, lock_runs=1000))

    threads = [threading.Thread(target=held_twenty_times) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read().locked_runs == 80


def test_the_file_is_per_config_and_namespace(tmp_path: Path) -> None:
    env = {"DEVSCALE_STATE_DIR": str(tmp_path)}
    a = MemoryFile.for_runner("devtrip", Path("a.yaml"), env).path
    assert a.parent == tmp_path and a.name.startswith("runs-devtrip-")
    assert a != MemoryFile.for_runner("devtrip", Path("b.yaml"), env).path
    assert a != MemoryFile.for_runner("shop", Path("a.yaml"), env).path
    xdg = MemoryFile.for_runner("devtrip", Path("a.yaml"), {"XDG_STATE_HOME": str(tmp_path)})
    assert xdg.path.parent == tmp_path / "devscale"


def alerts(store: MemoryFile | InProcessMemory, *channels: RecordingNotifier) -> RunAlerts:
    return RunAlerts(store, "devtrip", channels, quiet=QUIET, lock_runs=3)


def test_alerts_send_through_every_channel_and_report_a_failing_one() -> None:
    good, broken = RecordingNotifier(), RecordingNotifier("slack", fail="webhook revoked")
    told = alerts(InProcessMemory(), good, broken).failed(DOWN, NOW)
    assert [n.key for n in told.sent] == ["failed:run:kubernetes"]
    assert told.failures == ["slack: webhook revoked"]
    assert len(good.messages) == 1


def test_without_a_memory_nothing_is_sent_and_the_reason_is_given(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = MemoryFile(Path("/proc/devscale-state/runs.json"))   # even root cannot
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        blocked = MemoryFile(tmp_path / "ro" / "state" / "runs.json")
    channel = RecordingNotifier()
    told = alerts(blocked, channel).failed(DOWN, NOW)
    assert told.sent == [] and channel.messages == []
    assert told.problem is not None and "DEVSCALE_STATE_DIR" in told.problem
    assert alerts(blocked, channel).recovered(NOW) == []
    assert alerts(blocked, channel).completed(NOW) is not None


@pytest.mark.parametrize("error", [DOWN, HELD])
def test_recovered_reads_without_writing(tmp_path: Path, error: Exception) -> None:
    store = MemoryFile(tmp_path / "runs.json")
    run = alerts(store, RecordingNotifier())
    for minutes in (0, 2, 4):
        run.failed(error, NOW + timedelta(minutes=minutes))
    before = store.path.read_text()
    assert [n.kind for n in run.recovered(NOW + timedelta(minutes=6))] == ["recovered"]
    assert store.path.read_text() == before
    assert run.completed(NOW + timedelta(minutes=6)) is None
    assert run.recovered(NOW + timedelta(minutes=8)) == []
