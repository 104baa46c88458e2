"""Replay 30 days of 15 s samples (172,800 steps) for 5 metrics through `simulate`.

Baseline, in the same process: one pass over the recording touching every value, the floor any
replay pays. Reported: wall time and the ratio to that baseline, with a decision every 15 s
(every sample) and every 2 min (the cron schedule).

    python bench/bench_simulate.py [--days 30] [--repeat 3] [--cpu]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtrip_scale.scaling.config import load_config
from devtrip_scale.scaling.replay.recording import Recording, Series
from devtrip_scale.scaling.replay.simulate import Options, simulate

ROOT = Path(__file__).resolve().parent.parent
STEP = timedelta(seconds=15)


def recording(days: float) -> Recording:
    """A daily curve with noise for the five metrics of config/devtrip.yaml, at 4 replicas."""
    rnd = random.Random(7)
    n = int(days * 86400 / STEP.total_seconds())
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + STEP * i for i in range(n)]
    day = 86400 / STEP.total_seconds()
    users = [max(0.0, 350 + 300 * math.sin(i / day * 2 * math.pi) + rnd.gauss(0, 20))
             for i in range(n)]
    values: dict[str, list[float | None]] = {
        "cpu": [8 + u * 0.12 for u in users],
        "memory": [40 + u * 0.02 for u in users],
        "active_users": list(users),
        "rps": [u * 0.9 for u in users],
        "p95_latency": [0.2 + u / 1000 for u in users],
    }
    return Recording({"api": Series(times, values, [4] * n)})


CLOCK: Callable[[], float] = time.perf_counter


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = CLOCK()
        work()
        times.append(CLOCK() - start)
    return min(times)


def touch_every_value(rec: Recording) -> float:
    total = 0.0
    for series in rec.series.values():
        for column in series.values.values():
            for v in column:
                total += v or 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true",
                        help="time with the process's CPU clock instead of the wall clock")
    args = parser.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
    settings = load_config(ROOT / "config" / "devtrip.yaml", env={})
    rec = recording(args.days)
    steps = len(rec.series["api"].times)
    baseline = best_of(args.repeat, lambda: touch_every_value(rec))
    print(f"simulate: {args.days:g} days at 15 s = {steps:,} samples × 5 metrics "
          f"(best of {args.repeat}, {'CPU' if args.cpu else 'wall'} time)")
    print(f"{'case':<34} {'seconds':>9} {'× baseline':>11} {'decisions/s':>12}")
    print(f"{'baseline: touch every value':<34} {baseline:>9.3f} {1:>11.1f} {'':>12}")
    for label, interval in (("decide every 15 s (every sample)", timedelta(seconds=15)),
                            ("decide every 2 min (cron)", timedelta(minutes=2))):
        decisions = math.ceil(steps * STEP / interval)
        took = best_of(args.repeat, lambda i=interval: simulate(rec, settings, Options(i)))
        print(f"{label:<34} {took:>9.3f} {took / baseline:>11.1f} {decisions / took:>12,.0f}")


if __name__ == "__main__":
    main()
