"""The faster replay against the replay of commit e6d31ba (taken from git, with e6d31ba's policy):
random recordings — holes, gaps, irregular and sub-second sampling, replicas recorded or not,
every target type — give the same outcome, step for step and figure for figure, to the bit.

Run as a script for the long check: `python -m tests.scaling.replay.test_simulate_equivalence 40`.
"""

from __future__ import annotations

import random
import sys
import types
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from devtrip_scale.scaling.config import Settings
from devtrip_scale.scaling.replay import simulate
from devtrip_scale.scaling.replay.recording import Recording, Series
from tests.scaling.test_policy_equivalence import KINDS, reference, reference_policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reference_replay() -> types.ModuleType:
    module = reference("devtrip_scale/scaling/replay/simulate.py",
                       "devtrip_scale_reference_simulate")
    module.policy = reference_policy()   # the reference replay decides with the reference policy
    return module


def random_settings(rnd: random.Random) -> Settings:
    low = rnd.randint(0, 3)
    metrics = [{"name": f"m{k}",
                "query": f'sum by (deployment) (m{k}{{namespace="{{namespace}}"}})',
                "target": {"type": rnd.choice(KINDS), "value": rnd.choice((0.5, 2, 70, 100))}}
               for k in range(rnd.randint(1, 5))]
    down = {"stabilizationWindowSeconds": rnd.choice((0, 60, 300))}
    if rnd.random() < 0.5:
        down["policies"] = [{"type": "Percent", "value": 50, "periodSeconds": 60}]
    return Settings.model_validate({
        "namespace": "devtrip", "targets": [{"deployment": "api"}],
        "scaling": {"minReplicas": low, "maxReplicas": rnd.randint(max(low, 1), 12),
                    "tolerance": rnd.choice((0.1, 0.0, 0.2)),
                    "scaleUpCooldownSeconds": rnd.choice((0, 0, 60)),
                    "behavior": {"scaleDown": down,
                                 "scaleUp": {"stabilizationWindowSeconds": rnd.choice((0, 30))}}},
        "metrics": metrics})


def random_recording(rnd: random.Random, settings: Settings) -> Recording:
    n = rnd.choice((1, 2, rnd.randint(3, 60), rnd.randint(200, 3000)))
    regular = rnd.random() < 0.5
    at, times = T0, []
    for _ in range(n):
        times.append(at)
        if regular:
            at += timedelta(seconds=15)
        elif rnd.random() < 0.02:   # a gap, longer than the staleness
            at += timedelta(minutes=rnd.uniform(5, 90))
        else:
            at += timedelta(seconds=rnd.uniform(0.5, 60))
    holes = rnd.random() < 0.3
    values: dict[str, list[float | None]] = {}
    for m in settings.metrics:
        level = m.target.value * rnd.uniform(0.5, 3)
        values[m.name] = [None if holes and rnd.random() < 0.05 else
                          max(0.0, level * (1 + 0.8 * rnd.uniform(-1, 1))) for _ in range(n)]
    replicas: list[int | None] | None = None
    if rnd.random() < 0.6:
        lost = rnd.random() < 0.3
        replicas = [None if lost and rnd.random() < 0.05 else rnd.randint(0 if lost else 1, 8)
                    for _ in range(n)]
    return Recording({"api": Series(times, values, replicas)})


def differences(recordings: int, seed: int = 23) -> list[str]:
    """Each recording whose outcome differs between the two replays, field by field."""
    old = reference_replay()
    rnd = random.Random(seed)
    found: list[str] = []
    for k in range(recordings):
        settings = random_settings(rnd)
        rec = random_recording(rnd, settings)
        interval = timedelta(seconds=rnd.choice((7, 15, 60, 120)))
        delay = timedelta(seconds=rnd.choice((0, 0, 45, 200)))
        start = rnd.choice((None, rnd.randint(1, 6)))
        longest = rnd.choice((simulate.LOOKBACK, timedelta(minutes=1)))
        [new] = simulate.simulate(rec, settings, simulate.Options(interval, delay, start,
                                                                  longest)).values()
        [was] = old.simulate(rec, settings, old.Options(interval, delay, start,
                                                        longest)).values()
        for f in fields(new):
            if getattr(new, f.name) != getattr(was, f.name):
                found.append(f"recording {k}: {f.name}: {getattr(new, f.name)!r:.300} "
                             f"!= {getattr(was, f.name)!r:.300}")
    return found


def test_random_recordings_replay_as_the_reference_does() -> None:
    assert differences(12) == []


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    problems = differences(count)
    print("\n".join(problems) or f"{count} random recordings: every outcome is the reference's")
    sys.exit(1 if problems else 0)
