"""The benchmarks in bench/ still run (on tiny inputs: figures come from their own runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_bench_simulate_runs() -> None:
    proc = subprocess.run([sys.executable, "bench/bench_simulate.py", "--days", "0.05",
                           "--repeat", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "decide every 2 min (cron)" in proc.stdout


@pytest.mark.integration
def test_bench_pipeline_runs() -> None:
    """Its own test bed; a 4-stage chain and 10 log lines are enough to prove it measures."""
    proc = subprocess.run([sys.executable, "bench/bench_pipeline.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage-to-stage transition: devscale p50" in proc.stdout
    assert "log latency, pod file → client, 2 pod(s)" in proc.stdout


@pytest.mark.integration
def test_bench_otto_runs() -> None:
    """Its own test bed; ten calls, one build a path and 500 lines prove it measures."""
    proc = subprocess.run([sys.executable, "bench/bench_otto.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compat ÷ native p50" in proc.stdout
    assert "2-stage pipeline, call to last message" in proc.stdout
    assert "log forwarding, 500 lines: OttoForwarder" in proc.stdout


@pytest.mark.integration
def test_bench_durable_runs() -> None:
    """Its own test bed and replicas; --quick: one build of each kind, one adoption, 2 × 5."""
    proc = subprocess.run([sys.executable, "bench/bench_durable.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "progress_latency:" in proc.stdout and "lease taken, s:" in proc.stdout
    assert "succeeded: 10" in proc.stdout and "distinct: 10" in proc.stdout
