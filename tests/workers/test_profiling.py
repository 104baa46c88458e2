"""workers/profiling: $DEVSCALE_PROFILE profiles the run and writes pstats, whatever the end."""

from __future__ import annotations

import pstats
from pathlib import Path

import pytest

from devtrip_scale.workers.profiling import PROFILE_ENV, profiled


def busy_replica_loop() -> int:
    return sum(i * i for i in range(20_000)) and 0


def test_without_the_variable_it_only_runs(tmp_path: Path) -> None:
    assert profiled(lambda: 7, env={}) == 7
    assert list(tmp_path.iterdir()) == []


def test_the_profile_names_the_functions_that_ran(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r1.pstats"
    assert profiled(busy_replica_loop, env={PROFILE_ENV: str(target)}) == 0
    functions = {name for _, _, name in pstats.Stats(str(target)).stats}  # type: ignore[attr-defined]
    assert "busy_replica_loop" in functions


def test_the_profile_is_written_when_the_run_fails(tmp_path: Path) -> None:
    target = tmp_path / "r1.pstats"

    def fails() -> int:
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        profiled(fails, env={PROFILE_ENV: str(target)})
    assert "fails" in {name for _, _, name in pstats.Stats(str(target)).stats}  # type: ignore[attr-defined]


def test_its_clock_is_cpu_time_so_waiting_counts_for_little(tmp_path: Path) -> None:
    import time

    target = tmp_path / "r1.pstats"

    def waits() -> int:
        time.sleep(0.3)
        return 0

    profiled(waits, env={PROFILE_ENV: str(target)})
    stats = pstats.Stats(str(target))
    assert stats.total_tt < 0.1, stats.total_tt  # type: ignore[attr-defined]
