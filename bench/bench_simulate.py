"""Replay 30 days of 15 s samples (172,800 steps) for 5 metrics through `simulate`.

Baseline, in the same process: one pass over the recording touching every value, the floor any
replay pays. Reported: wall time and the ratio to that baseline, with a decision every 15 s
(every sample) and every 2 min (the cron schedule). With --against COMMIT the replay and policy
of that commit (read with `git show`) are timed too, in the same process, turn about with
today's, and the speed-up over them is reported.

    python bench/bench_simulate.py [--days 30] [--repeat 3] [--cpu] [--against e6d31ba]
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtrip_scale.scaling.config import load_config
from devtrip_scale.scaling.replay import simulate as today
from devtrip_scale.scaling.replay.recording import Recording, Series

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


def timed(work: Callable[[], object]) -> float:
    start = CLOCK()
    work()
    return CLOCK() - start


def touch_every_value(rec: Recording) -> float:
    total = 0.0
    for series in rec.series.values():
        for column in series.values.values():
            for v in column:
                total += v or 0.0
    return total


def at_commit(commit: str, path: str, name: str) -> types.ModuleType:
    """The module at `path` as it was at `commit`, imported under `name`."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


def replay_at(commit: str) -> types.ModuleType:
    """`commit`'s replay, deciding with `commit`'s policy."""
    module = at_commit(commit, "devtrip_scale/scaling/replay/simulate.py", "bench_old_simulate")
    module.policy = at_commit(commit, "devtrip_scale/scaling/policy.py", "bench_old_policy")
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true",
                        help="time with the process's CPU clock instead of the wall clock")
    parser.add_argument("--against", metavar="COMMIT",
                        help="also time the replay and policy of this commit, turn about")
    args = parser.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
    settings = load_config(ROOT / "config" / "devtrip.yaml", env={})
    rec = recording(args.days)
    steps = len(rec.series["api"].times)
    replays = [("", today)] + ([(f"{args.against}: ", replay_at(args.against))]
                               if args.against else [])
    cases = [(label, interval, prefix, module)
             for label, interval in (("decide every 15 s (every sample)", timedelta(seconds=15)),
                                     ("decide every 2 min (cron)", timedelta(minutes=2)))
             for prefix, module in replays]
    baseline = math.inf
    took = [math.inf] * len(cases)
    for _ in range(args.repeat):   # turn about, best of --repeat: the machine is shared
        baseline = min(baseline, timed(lambda: touch_every_value(rec)))
        for k, (_, interval, _, module) in enumerate(cases):
            took[k] = min(took[k], timed(lambda m=module, i=interval: m.simulate(
                rec, settings, m.Options(i))))
    print(f"simulate: {args.days:g} days at 15 s = {steps:,} samples × 5 metrics "
          f"(best of {args.repeat}, {'CPU' if args.cpu else 'wall'} time)")
    print(f"{'case':<43} {'seconds':>9} {'× baseline':>11} {'decisions/s':>12}")
    print(f"{'baseline: touch every value':<43} {baseline:>9.3f} {1:>11.1f} {'':>12}")
    for k, (label, interval, prefix, _) in enumerate(cases):
        decisions = math.ceil(steps * STEP / interval)
        line = (f"{prefix + label:<43} {took[k]:>9.3f} {took[k] / baseline:>11.1f} "
                f"{decisions / took[k]:>12,.0f}")
        if prefix:
            line += f"   today {took[k] / took[k - 1]:.2f}× faster"
        print(line)


if __name__ == "__main__":
    main()
