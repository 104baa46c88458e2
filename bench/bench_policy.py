"""The policy alone: `decide` + `remember` with full behaviour (windows, rate policies,
cooldowns) over a 300 s history and 5 metrics, decisions per second; baseline in the same process:
building the same Observation without deciding.

The loads repeat every 120 decisions and the times every 15, so the 120 observations and 15
decision times are built before the clock starts: the timed loop is the policy alone. Each of
baseline and policy runs --repeat times, alternating, and the best run counts (as `timeit`
advises on a shared machine: the other runs measured the machine's other work too). With
--against COMMIT, that commit's policy (read with `git show`) is timed too, turn about.

    python bench/bench_policy.py [--decisions 100000] [--repeat 5] [--cpu] [--against e6d31ba]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtrip_scale.scaling import policy as today
from devtrip_scale.scaling.models import (
    History,
    MetricReading,
    Observation,
    PolicySpec,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
)

SPEC = PolicySpec(
    2, 50, 0.1,
    ScalingRules(60, "Max", (ScalingPolicy("Percent", 100, 60), ScalingPolicy("Pods", 4, 60))),
    ScalingRules(300, "Min", (ScalingPolicy("Percent", 50, 60), ScalingPolicy("Pods", 2, 30))),
    120, 300)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# 300 s of history at 15 s: 20 recommendations, and a few scale events.
HISTORY = History(tuple(Recommendation(T0 - timedelta(seconds=15 * k), 6 + k % 3)
                        for k in range(20, 0, -1)),
                  (ScaleEvent(T0 - timedelta(seconds=200), 4, 6),
                   ScaleEvent(T0 - timedelta(seconds=90), 6, 7)), 7)


LOAD_PERIOD = 120
ROOT = Path(__file__).resolve().parent.parent


def policy_at(commit: str) -> types.ModuleType:
    """`devtrip_scale/scaling/policy.py` as it was at `commit`."""
    source = subprocess.run(["git", "-C", str(ROOT), "show",
                             f"{commit}:devtrip_scale/scaling/policy.py"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("bench_old_policy")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{commit}:policy.py", "exec"), module.__dict__)
    return module


def observation(i: int) -> Observation:
    load = 50 + (i * 37) % LOAD_PERIOD
    return Observation("api", 7, (
        MetricReading("cpu", "Utilization", 70, float(load)),
        MetricReading("memory", "Utilization", 80, 60.0),
        MetricReading("users", "AverageValue", 100, load * 9.0),
        MetricReading("rps", "AverageValue", 100, load * 8.0),
        MetricReading("p95", "Value", 2, 1.2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", action="store_true",
                        help="time with the process's CPU clock instead of the wall clock")
    parser.add_argument("--against", metavar="COMMIT",
                        help="also time the policy of this commit, turn about")
    args = parser.parse_args()
    n = args.decisions
    observations = [observation(i) for i in range(LOAD_PERIOD)]
    times = [T0 + timedelta(seconds=i) for i in range(15)]

    clock = time.process_time if args.cpu else time.perf_counter

    def build() -> float:
        start = clock()
        for i in range(n):
            observation(i)
        return clock() - start

    def timing(module: types.ModuleType) -> Callable[[], float]:
        decide, remember = module.decide, module.remember

        def policy() -> float:
            start = clock()
            for i in range(n):
                at = times[i % 15]
                d = decide(observations[i % LOAD_PERIOD], SPEC, HISTORY, at)
                remember(HISTORY, d, SPEC, at, written=None)
            return clock() - start

        return policy

    policies = [("decide + remember", timing(today))]
    if args.against:
        policies.append((f"{args.against}'s decide + remember", timing(policy_at(args.against))))
    runs = [(build(), *(run() for _, run in policies)) for _ in range(args.repeat)]
    baseline = min(r[0] for r in runs)
    print(f"{n:,} decisions, 5 metrics, full behaviour, 300 s history, best of {args.repeat}, "
          f"{'CPU' if args.cpu else 'wall'} time")
    print(f"{'baseline (build the observation):':<35} {baseline:.3f} s")
    took = [min(r[k + 1] for r in runs) for k in range(len(policies))]
    for (label, _), spent in zip(policies, took, strict=True):
        print(f"{label + ':':<35} {spent:.3f} s  ({n / spent:,.0f} decisions/s, "
              f"{spent / baseline:.1f}× baseline, {spent / n * 1e6:.1f} µs each)")
    if args.against:
        print(f"today {took[1] / took[0]:.2f}× faster than {args.against}")


if __name__ == "__main__":
    main()
