"""The faster policy against the policy of commit e6d31ba (taken from git), case by case:
random specs, histories and readings give the same decisions and the same remembered history.

Run as a script for the long check: `python -m tests.scaling.test_policy_equivalence 200000`.
"""

from __future__ import annotations

import random
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta

from devtrip_scale.scaling import policy
from devtrip_scale.scaling.models import (
    History,
    MetricReading,
    Observation,
    PolicySpec,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    Unschedulable,
)
from tests.conftest import ROOT

REFERENCE = "e6d31ba"   # the last commit before the policy and the replay were made faster
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("Utilization", "Value", "AverageValue")


def reference(path: str, name: str) -> types.ModuleType:
    """`path` (a module of the package) as it was at REFERENCE, imported as module `name`."""
    if name in sys.modules:
        return sys.modules[name]
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{REFERENCE}:{path}"],
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{REFERENCE}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def reference_policy() -> types.ModuleType:
    return reference("devtrip_scale/scaling/policy.py", "devtrip_scale_reference_policy")


def random_rules(rnd: random.Random) -> ScalingRules:
    policies = tuple(ScalingPolicy(rnd.choice(("Pods", "Percent")), rnd.choice((1, 2, 4, 50, 100,
                                                                                200)),
                                   rnd.choice((15, 30, 60, 120)))
                     for _ in range(rnd.randint(0, 3)))
    return ScalingRules(rnd.choice((0, 0, 15, 60, 300)), rnd.choice(("Max", "Max", "Min",
                                                                    "Disabled")),
                        policies, rnd.choice((None, None, 0.0, 0.05, 0.2)))


def random_spec(rnd: random.Random) -> PolicySpec:
    low = rnd.randint(0, 4)
    return PolicySpec(low, rnd.randint(max(low, 1), 30), rnd.choice((0.1, 0.1, 0.0, 0.05, 0.3)),
                      random_rules(rnd), random_rules(rnd), rnd.choice((0, 0, 30, 120)),
                      rnd.choice((0, 0, 60, 300)))


def random_value(rnd: random.Random, target: float) -> float | None:
    roll = rnd.random()
    if roll < 0.08:
        return None
    if roll < 0.12:
        return -rnd.uniform(0, 5)
    if roll < 0.3:   # on the target or a tolerance edge, where rounding decides
        return target * rnd.choice((0, 0.9, 0.95, 1, 1.05, 1.1, 2, 3.5))
    return rnd.uniform(0, 4 * target)


def random_case(rnd: random.Random) -> tuple[Observation, PolicySpec, History, datetime]:
    spec = random_spec(rnd)
    current = rnd.choice((0, rnd.randint(0, 35)))
    readings = []
    for k in range(rnd.randint(0, 5)):
        kind = rnd.choice(KINDS)
        target = rnd.choice((1, 2, 0.3, 70, 80, 100, 0.5))
        readings.append(MetricReading(f"m{k}", kind, target, random_value(rnd, target),
                                      None, rnd.choice((None, None, rnd.randint(0, current + 2)))))
    ready = rnd.choice((None, rnd.randint(0, current + 1)))
    unschedulable = rnd.choice((None, None, None, Unschedulable(2, current + 2, T0 - timedelta(
        minutes=3), "0/3 nodes are available")))
    obs = Observation("api", current, tuple(readings), ready, rnd.choice((0, 0, 1, 3)),
                      unschedulable)
    step = rnd.choice((1, 15, 15, 60))
    now = T0 + timedelta(seconds=rnd.choice((0, 7.5, 15)))
    recs = tuple(Recommendation(now - timedelta(seconds=step * k), rnd.randint(0, 35))
                 for k in range(rnd.randint(0, 25), 0, -1))
    events = tuple(ScaleEvent(now - timedelta(seconds=s), rnd.randint(0, 30), rnd.randint(0, 30))
                   for s in sorted(rnd.sample(range(0, 400, 5), rnd.randint(0, 4)), reverse=True))
    return obs, spec, History(recs, events, rnd.choice((None, 3))), now


def differences(cases: int, seed: int = 23) -> list[str]:
    """Each case where the two policies disagree (decide, then remember), at most ten."""
    old = reference_policy()
    rnd = random.Random(seed)
    found: list[str] = []
    for k in range(cases):
        obs, spec, history, now = random_case(rnd)
        new_decision = policy.decide(obs, spec, history, now)
        old_decision = old.decide(obs, spec, history, now)
        written = rnd.choice((None, new_decision.desired_replicas, obs.current_replicas + 1))
        new_history = policy.remember(history, new_decision, spec, now, written=written)
        old_history = old.remember(history, old_decision, spec, now, written=written)
        if new_decision != old_decision or new_history != old_history \
                or type(new_history) is not History:
            found.append(f"case {k}: {obs} {spec} {history} {now}\n  new {new_decision} "
                         f"{new_history}\n  old {old_decision} {old_history}")
            if len(found) == 10:
                break
    return found


def test_random_cases_decide_and_remember_as_the_reference_does() -> None:
    assert differences(20_000) == []


def test_the_check_can_fail() -> None:
    # the reference with its tolerance band moved disagrees: the comparison sees it
    old = reference_policy()
    obs = Observation("api", 4, (MetricReading("cpu", "Utilization", 70, 75.0),))
    spec = PolicySpec(1, 10, 0.1)
    assert policy.decide(obs, spec, History(), T0) == old.decide(obs, spec, History(), T0)
    assert policy.decide(obs, spec, History(), T0) != old.decide(obs, PolicySpec(1, 10, 0.05),
                                                                 History(), T0)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    problems = differences(count)
    print("\n".join(problems) or f"{count:,} random cases: decide and remember agree with "
          f"{REFERENCE}")
    sys.exit(1 if problems else 0)
