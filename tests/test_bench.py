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


@pytest.mark.integration
def test_bench_check_runs() -> None:
    """Its own test bed; 20 Deployments with KWOK pods against the naive way, and 50 with their
    status written (controller-manager stopped) prove both ways of being Ready are measured."""
    proc = subprocess.run([sys.executable, "bench/bench_check.py", "--sizes", "20,50",
                           "--naive-at", "20", "--repeat", "1", "--pods-up-to", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "N=20: 20 Deployments Ready (KWOK pods)" in proc.stdout
    assert "N=50: 50 Deployments Ready (status subresource)" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.lstrip()[:2].isdigit()]
    assert [(r[0], r[1], r[4]) for r in rows] == [
        ("20", "batched", "5"), ("20", "naive", "100"), ("50", "batched", "5")]
