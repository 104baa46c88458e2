"""The benchmarks in bench/ still run (on tiny inputs: figures come from their own runs)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_bench_simulate_runs() -> None:
    proc = subprocess.run([sys.executable, "bench/bench_simulate.py", "--days", "0.05",
                           "--repeat", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "decide every 2 min (cron)" in proc.stdout
