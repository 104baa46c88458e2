"""The pure HPA policy: per-metric proposals, tolerance, the max across metrics, missing data,
min/max, stabilisation windows, rate policies, cooldowns, and the history it leaves.

Each case names its source: the Kubernetes documentation page "Horizontal Pod Autoscaling"
(docs: HPA), or `pkg/controller/podautoscaler` (replica_calculator.go, horizontal.go,
metrics/utilization.go) of Kubernetes v1.34.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from devtrip_scale.scaling.policy import decide, propose, remember
from tests.conftest import NOW

FREE_DOWN = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),))


def spec(**kw: object) -> PolicySpec:
    base: dict[str, object] = {"min_replicas": 1, "max_replicas": 100, "scale_down": FREE_DOWN}
    base.update(kw)
    return PolicySpec(**base)  # type: ignore[arg-type]


def obs(current: int, *readings: tuple[str, float | None, float]) -> Observation:
    kinds = {"u": "Utilization", "v": "Value", "a": "AverageValue"}
    return Observation("api", current, tuple(
        MetricReading(f"m{i}", kinds[k], target, value)  # type: ignore[arg-type]
        for i, (k, value, target) in enumerate(readings)))


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("current", "reading", "expected"),
    [
        # docs: HPA "Algorithm details": 200m against 100m doubles the replicas
        pytest.param(3, ("v", 0.2, 0.1), 6, id="docs-value-ratio-2-doubles"),
        # docs: HPA: 50m against 100m halves them
        pytest.param(4, ("v", 0.05, 0.1), 2, id="docs-value-ratio-half-halves"),
        # docs: HPA: a ratio within the 0.1 tolerance skips scaling
        pytest.param(10, ("v", 1.09, 1.0), 10, id="docs-within-tolerance-up"),
        pytest.param(10, ("v", 0.91, 1.0), 10, id="docs-within-tolerance-down"),
        pytest.param(10, ("v", 1.11, 1.0), 12, id="docs-just-outside-tolerance"),
        # utilization.go: utilisation is truncated to whole percent: 140.9 % reads as 140 %
        pytest.param(2, ("u", 140.9, 70), 4, id="utilization-truncated-to-percent"),
        # replica_calculator.go GetExternalPerPodMetricReplicas: ceil(total / target)
        pytest.param(2, ("a", 450, 100), 5, id="average-value-total-over-target"),
        pytest.param(4, ("a", 0, 1), 1, id="average-value-empty-queue-to-min"),
        # the seed: CPU at 140 % of requests against 70 % from 2 replicas asks for 4
        pytest.param(2, ("u", 140, 70), 4, id="seed-cpu-140-of-70"),
    ],
)
def test_single_metric(current: int, reading: tuple[str, float, float], expected: int) -> None:
    d = decide(obs(current, reading), spec(), History(), NOW)
    assert d.desired_replicas == expected


def test_highest_proposal_wins() -> None:
    # horizontal.go computeReplicasForMetrics: the max across metrics
    d = decide(obs(4, ("u", 35, 70), ("a", 700, 100)), spec(), History(), NOW)
    assert (d.desired_replicas, d.deciding_metric) == (7, "m1")


def test_missing_metric_may_scale_up() -> None:
    d = decide(obs(2, ("u", 140, 70), ("a", None, 100)), spec(), History(), NOW)
    assert d.desired_replicas == 4


def test_missing_metric_never_scales_down() -> None:
    # horizontal.go: invalid metrics and a proposal below current → no scaling
    d = decide(obs(8, ("u", 10, 70), ("a", None, 100)), spec(), History(), NOW)
    assert (d.desired_replicas, d.reason, d.action) == (8, "MissingMetrics", "hold")


def test_no_reading_at_all_holds() -> None:
    d = decide(obs(5, ("u", None, 70)), spec(), History(), NOW)
    assert (d.desired_replicas, d.reason, d.action) == (5, "NoMetrics", "hold")


def test_zero_replicas_means_disabled_unless_min_is_zero() -> None:
    # horizontal.go: scale.Spec.Replicas == 0 && minReplicas != 0 → ScalingDisabled
    assert decide(obs(0, ("a", 5, 1)), spec(), History(), NOW).reason == "ScalingDisabled"
    d = decide(obs(0, ("a", 5, 1)), spec(min_replicas=0), History(), NOW)
    assert (d.desired_replicas, d.reason) == (4, "ScaleUpLimit")  # 0 + 4 pods per 15 s


@pytest.mark.parametrize(
    ("current", "expected", "reason"),
    [
        pytest.param(12, 10, "TooManyReplicas", id="above-max-brought-down"),
        pytest.param(1, 2, "TooFewReplicas", id="below-min-brought-up"),
    ],
)
def test_outside_range_is_brought_inside(current: int, expected: int, reason: str) -> None:
    # horizontal.go reconcileAutoscaler: current > max → max; current < min → min
    d = decide(obs(current, ("u", 70, 70)), spec(min_replicas=2, max_replicas=10), History(), NOW)
    assert (d.desired_replicas, d.reason) == (expected, reason)


def test_clamped_to_max_is_too_many_replicas() -> None:
    d = decide(obs(8, ("a", 5000, 100)), spec(max_replicas=10), History(), NOW)
    assert (d.desired_replicas, d.reason, d.recommendation) == (10, "TooManyReplicas", 50)
    # below the max, the scale-up rate limits first (horizontal.go: ScaleUpLimit)
    d = decide(obs(2, ("a", 5000, 100)), spec(max_replicas=10), History(), NOW)
    assert (d.desired_replicas, d.reason) == (6, "ScaleUpLimit")


def test_clamped_to_min_is_too_few_replicas() -> None:
    d = decide(obs(5, ("a", 10, 100)), spec(min_replicas=3), History(), NOW)
    assert (d.desired_replicas, d.reason) == (3, "TooFewReplicas")


def test_default_scale_up_is_max_of_100_percent_and_4_pods_per_15s() -> None:
    # docs: HPA "Default Behavior": scale up by 100 % or 4 pods per 15 s, whichever is larger
    assert decide(obs(2, ("a", 2000, 100)), spec(), History(), NOW).desired_replicas == 6
    d = decide(obs(10, ("a", 5000, 100)), spec(), History(), NOW)
    assert (d.desired_replicas, d.reason) == (20, "ScaleUpLimit")


def test_rate_is_measured_from_the_replicas_at_the_period_start() -> None:
    # horizontal.go calculateScaleUpLimitWithScalingRules: periodStartReplicas = current − added
    past = History(scale_events=(ScaleEvent(ago(10), 2, 6),))
    d = decide(obs(6, ("a", 2000, 100)), spec(), past, NOW)
    assert (d.desired_replicas, d.reason) == (6, "ScaleUpLimit")  # max(2 + 4, 2 × 2) = 6
    # the event exactly 15 s old is outside the period (timestamp.After(cutoff))
    past = History(scale_events=(ScaleEvent(ago(15), 2, 6),))
    assert decide(obs(6, ("a", 2000, 100)), spec(), past, NOW).desired_replicas == 12


def test_docs_scale_down_policies_select_max_change() -> None:
    # docs: HPA "Scaling Policies": Pods 4/60 s and Percent 10/60 s; with 80 replicas the
    # percent policy allows 8 fewer, the larger change, so 72
    rules = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)))
    d = decide(obs(80, ("a", 100, 100)), spec(scale_down=rules), History(), NOW)
    assert (d.desired_replicas, d.reason) == (72, "ScaleDownLimit")
    rules_min = ScalingRules(0, "Min", rules.policies)
    assert decide(obs(80, ("a", 100, 100)), spec(scale_down=rules_min), History(),
                  NOW).desired_replicas == 76


def test_percent_scale_down_truncates() -> None:
    # horizontal.go calculateScaleDownLimitWithBehaviors: int32(start × (1 − value/100))
    rules = ScalingRules(0, "Max", (ScalingPolicy("Percent", 50, 60),))
    assert decide(obs(3, ("a", 0, 1)), spec(scale_down=rules), History(), NOW).desired_replicas == 1


@pytest.mark.parametrize("direction", ["up", "down"])
def test_select_policy_disabled(direction: str) -> None:
    # docs: HPA "Disable scale down": selectPolicy: Disabled
    disabled = ScalingRules(0, "Disabled", (ScalingPolicy("Pods", 4, 15),))
    if direction == "up":
        d = decide(obs(3, ("a", 900, 100)), spec(scale_up=disabled), History(), NOW)
        assert (d.desired_replicas, d.reason) == (3, "ScaleUpLimit")
    else:
        d = decide(obs(9, ("a", 100, 100)), spec(scale_down=disabled), History(), NOW)
        assert (d.desired_replicas, d.reason) == (9, "ScaleDownLimit")


def test_scale_down_window_takes_the_highest_recommendation() -> None:
    # docs: HPA "Stabilization window"; horizontal.go stabilizeRecommendationWithBehaviors
    window = ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))
    past = History(recommendations=(Recommendation(ago(200), 8), Recommendation(ago(100), 6)))
    d = decide(obs(8, ("a", 300, 100)), spec(scale_down=window), past, NOW)
    assert (d.desired_replicas, d.reason) == (8, "ScaleDownStabilized")
    assert d.held_until == ago(200) + timedelta(seconds=300)


def test_entry_exactly_as_old_as_the_window_is_outside() -> None:
    window = ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))
    past = History(recommendations=(Recommendation(ago(300), 8),))
    assert decide(obs(8, ("a", 300, 100)), spec(scale_down=window), past,
                  NOW).desired_replicas == 3


def test_scale_up_window_takes_the_lowest_recommendation() -> None:
    window = ScalingRules(60, "Max", (ScalingPolicy("Percent", 100, 60),))
    past = History(recommendations=(Recommendation(ago(30), 3),))
    d = decide(obs(2, ("a", 600, 100)), spec(scale_up=window), past, NOW)
    assert (d.desired_replicas, d.reason) == (3, "ScaleUpStabilized")


def test_first_sync_seeds_the_window_with_the_current_replicas() -> None:
    # The first run that sees a Deployment does not scale down within the default 300 s window.
    d = decide(obs(6, ("a", 100, 100)), spec(scale_down=PolicySpec(1, 2).scale_down),
               History(), NOW)
    assert (d.desired_replicas, d.reason) == (6, "ScaleDownStabilized")
    after = remember(History(), d, spec(), NOW, written=None)
    assert [r.replicas for r in after.recommendations] == [6, 1]


@pytest.mark.parametrize(
    ("tolerances", "reading", "expected"),
    [
        # Kubernetes 1.33+: per-direction tolerance in scaleUp/scaleDown overrides the global one
        pytest.param((0.5, None), 1.4, 10, id="wider-scale-up-tolerance"),
        pytest.param((None, 0.05), 0.93, 10 * 93 // 100 + 1, id="narrower-scale-down-tolerance"),
        pytest.param((0.0, None), 1.01, 11, id="zero-scale-up-tolerance"),
    ],
)
def test_per_direction_tolerance(tolerances: tuple[float | None, float | None], reading: float,
                                 expected: int) -> None:
    up = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),), tolerance=tolerances[0])
    down = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),), tolerance=tolerances[1])
    d = decide(obs(10, ("v", reading, 1.0)), spec(scale_up=up, scale_down=down), History(), NOW)
    assert d.desired_replicas == expected


@pytest.mark.parametrize(
    ("event_age", "current", "reading", "expected", "reason"),
    [
        pytest.param(100, 2, 600, 2, "ScaleUpCooldown", id="up-inside-cooldown"),
        pytest.param(120, 2, 600, 6, "DesiredWithinRange", id="up-cooldown-over"),
        pytest.param(200, 6, 100, 6, "ScaleDownCooldown", id="down-inside-cooldown"),
        pytest.param(300, 6, 100, 1, "DesiredWithinRange", id="down-cooldown-over"),
    ],
)
def test_cooldowns(event_age: int, current: int, reading: float, expected: int,
                   reason: str) -> None:
    past = History(scale_events=(ScaleEvent(ago(event_age), 1, 2),))
    s = spec(scale_up_cooldown_seconds=120, scale_down_cooldown_seconds=300)
    d = decide(obs(current, ("a", reading, 100)), s, past, NOW)
    assert (d.desired_replicas, d.reason) == (expected, reason)


def test_remember_records_events_and_trims_to_the_longest_window() -> None:
    s = spec()  # longest: the 15 s periods
    old = History(recommendations=(Recommendation(ago(100), 3),),
                  scale_events=(ScaleEvent(ago(100), 1, 3),))
    d = decide(obs(3, ("a", 600, 100)), s, old, NOW)
    new = remember(old, d, s, NOW, written=d.desired_replicas)
    assert new.recommendations == (Recommendation(NOW, 6),)
    assert new.scale_events == (ScaleEvent(NOW, 3, 6),)
    assert new.last_written == 6


def test_propose_reports_missing_reading() -> None:
    p = propose(MetricReading("q", "AverageValue", 1, None, "stale"), 3, spec())
    assert (p.replicas, p.error) == (None, "stale")


def ready_obs(current: int, ready: int, unready: int, *readings: tuple[str, float, float]
              ) -> Observation:
    o = obs(current, *readings)
    return Observation(o.deployment, current, o.readings, ready_pods=ready, unready_pods=unready)


@pytest.mark.parametrize(
    ("kind", "reading", "target", "expected"),
    [
        # replica_calculator.go getUsageRatioReplicaCount: "For currentReplicas=0 doesn't take
        # into account ready pods count and tolerance to support scaling to zero pods":
        # ceil(usageRatio). Object and External Value targets use it.
        pytest.param("v", 1, 5, 1, id="value-first-waiting-job-wakes-one"),
        pytest.param("v", 12, 5, 3, id="value-ceil-of-ratio"),
        pytest.param("v", 1.05, 1, 2, id="value-tolerance-ignored-from-zero"),
        pytest.param("v", 0, 5, 0, id="value-nothing-waiting-stays-at-zero"),
        # devscale applies the same rule to a Utilization reading (a custom query can have one
        # with no pods; the HPA's resource metrics have none to read)
        pytest.param("u", 140, 70, 2, id="utilization-ceil-of-ratio"),
        # GetExternalPerPodMetricReplicas: ceil(total / target per pod), whatever the count
        pytest.param("a", 5, 2, 3, id="average-value-total-over-target"),
        pytest.param("a", 0, 2, 0, id="average-value-empty-queue-stays-at-zero"),
    ],
)
def test_scale_from_zero_for_every_target_type(kind: str, reading: float, target: float,
                                               expected: int) -> None:
    d = decide(obs(0, (kind, reading, target)), spec(min_replicas=0), History(), NOW)
    assert d.desired_replicas == expected
    assert d.reason != "ScalingDisabled"


@pytest.mark.parametrize(
    ("current", "ready", "unready", "reading", "expected"),
    [
        # GetResourceReplicas: ceil(usageRatio × readyPodCount), not × spec.replicas
        pytest.param(4, 2, 0, ("u", 140, 70), 4, id="utilization-times-ready-pods"),
        pytest.param(3, 3, 0, ("u", 140, 70), 6, id="utilization-all-ready"),
        # rebalanceIgnored: on a scale-up unready pods count as 0 %; a new ratio below 1 would
        # reverse the direction, so the current count stays (the double scale-up the issue saw:
        # 2 → 5, and not → 6 on the same load)
        pytest.param(5, 2, 3, ("u", 175, 70), 5, id="utilization-unready-pods-hold-scale-up"),
        # ... and a ratio still above 1 after counting them scales on all of them
        pytest.param(3, 2, 1, ("u", 210, 70), 6, id="utilization-unready-rebalanced-up"),
        # no rebalance on a scale-down: the ready pods alone
        pytest.param(6, 4, 2, ("u", 35, 70), 2, id="utilization-scale-down-on-ready-pods"),
        # getUsageRatioReplicaCount: tolerance first, then ceil(usageRatio × readyPodCount)
        pytest.param(4, 2, 2, ("v", 3, 1), 6, id="value-times-ready-pods"),
        pytest.param(4, 1, 3, ("v", 1.05, 1), 4, id="value-within-tolerance-keeps-current"),
        # GetExternalPerPodMetricReplicas counts no pods: ceil(total / target)
        pytest.param(4, 1, 3, ("a", 600, 100), 6, id="average-value-ignores-readiness"),
        # the direction rule (GetResourceReplicas, "would cause a change in scale direction"):
        # a load above target never proposes fewer than the current count
        pytest.param(5, 2, 0, ("u", 140, 70), 5, id="above-target-never-proposes-fewer"),
        pytest.param(2, 4, 0, ("u", 56, 70), 2, id="below-target-never-proposes-more"),
    ],
)
def test_ready_pod_count(current: int, ready: int, unready: int,
                         reading: tuple[str, float, float], expected: int) -> None:
    d = decide(ready_obs(current, ready, unready, reading), spec(), History(), NOW)
    assert d.desired_replicas == expected
    assert d.ready_pods == ready


def sampled_obs(current: int, ready: int, unready: int, sampled: int,
                *readings: tuple[str, float, float]) -> Observation:
    """Readings that stand on `sampled` pods (the query's pod count), `ready` pods Ready."""
    o = ready_obs(current, ready, unready, *readings)
    return Observation(o.deployment, current, tuple(r._replace(pods=sampled) for r in o.readings),
                       ready_pods=ready, unready_pods=unready)


@pytest.mark.parametrize(
    ("current", "ready", "unready", "sampled", "reading", "expected"),
    [
        # groupPods: Ready pods without a sample are missingPods; GetResourceReplicas, on a
        # scale-up, counts them as 0 % and computes the ratio again: (2 × 200 + 3 × 0) / 5 =
        # 80 % against 80 % is within tolerance, keep 5 (issue 23: run 2 asked for 13)
        pytest.param(5, 5, 0, 2, ("u", 200, 80), 5, id="groupPods-missing-hold-a-second-scale-up"),
        # the same load on all 5 pods is a real increase: ceil(2.5 × 5)
        pytest.param(5, 5, 0, 5, ("u", 200, 80), 13, id="all-pods-sampled-scale-again"),
        # GetResourceReplicas: a new ratio still above 1 scales on every pod counted:
        # (2 × 300) / 4 = 150 % of 50 % → ceil(3 × 4)
        pytest.param(4, 4, 0, 2, ("u", 300, 50), 12, id="GetResourceReplicas-recount-still-up"),
        # GetResourceReplicas, on a scale-down, counts missing pods as 100 % of their requests:
        # (2 × 20 + 4 × 100) / 6 = 73 % of 50 % crosses 1: the direction would reverse, keep 6
        pytest.param(6, 6, 0, 2, ("u", 20, 50), 6,
                     id="GetResourceReplicas-missing-100-percent-down"),
        # ... and a ratio still below 1 after counting them: (8 × 10 + 2 × 100) / 10 = 28 % of 50
        # → ceil(0.56 × 10) = 6, where the sampled pods alone would ask for 2
        pytest.param(10, 10, 0, 8, ("u", 10, 50), 6, id="GetResourceReplicas-recount-still-down"),
        # fallbackUtilization = max(100, target): against 150 %, (2 × 30 + 2 × 150) / 4 = 90 %
        # → ceil(0.6 × 4) = 3 (100 % would give 2)
        pytest.param(4, 4, 0, 2, ("u", 30, 150), 3,
                     id="GetResourceReplicas-fallback-target-above-100"),
        # a ratio of exactly 1 fills nothing: the ratio stays 1, within tolerance
        pytest.param(5, 5, 0, 2, ("u", 80, 80), 5,
                     id="GetResourceReplicas-ratio-one-fills-nothing"),
        # missing and unready pods together on a scale-up, both as 0 %: (2 × 300) / 6 = 100 %
        # of 60 % → ceil(1.666 × 6) = 10
        pytest.param(6, 4, 2, 2, ("u", 300, 60), 10, id="GetResourceReplicas-missing-and-unready"),
        # as many sampled pods as ready ones: no missing pod, the ready-pod product as before
        pytest.param(5, 2, 3, 2, ("u", 175, 70), 5, id="no-missing-pods-unready-rebalanced"),
        pytest.param(4, 2, 0, 3, ("u", 140, 70), 4, id="more-samples-than-ready-pods"),
        # calcPlainMetricReplicas (a per-pod AverageValue): on a scale-up missing pods are 0:
        # 500 over 5 pods is 100 per pod against 100, keep 5
        pytest.param(5, 5, 0, 2, ("a", 500, 100), 5, id="calcPlainMetricReplicas-missing-zero-up"),
        pytest.param(4, 4, 0, 2, ("a", 1000, 100), 10, id="calcPlainMetricReplicas-recount-up"),
        # ... on a scale-down they use exactly the target: (100 + 3 × 100) / 5 = 80 per pod
        # → ceil(0.8 × 5) = 4, where ceil(total / target) would give 1
        pytest.param(5, 5, 0, 2, ("a", 100, 100), 4,
                     id="calcPlainMetricReplicas-missing-target-down"),
        # a Value (an object's or an external total) counts no pods: ceil(3 × 5 ready)
        pytest.param(5, 5, 0, 2, ("v", 3, 1), 15, id="getUsageRatioReplicaCount-ignores-samples"),
    ],
)
def test_missing_pods(current: int, ready: int, unready: int, sampled: int,
                      reading: tuple[str, float, float], expected: int) -> None:
    o = sampled_obs(current, ready, unready, sampled, reading)
    assert decide(o, spec(), History(), NOW).proposals[0].replicas == expected


def test_back_to_back_runs_on_the_old_pods_readings_scale_once() -> None:
    # issue 23 on the policy alone: run 1 scales 2 → 5 on 200 % of 80 % over 2 pods; run 2 and
    # run 3 see 5 Ready pods and the same aggregate over the same 2 pods: no second scale-up
    reading = ("u", 200, 80)
    first = decide(sampled_obs(2, 2, 0, 2, reading), spec(), History(), NOW)
    assert first.desired_replicas == 5
    past = remember(History(), first, spec(), NOW, written=5)
    for later in (1, 4):
        d = decide(sampled_obs(5, 5, 0, 2, reading), spec(), past, NOW + timedelta(seconds=later))
        assert (d.desired_replicas, d.reason) == (5, "WithinTolerance")
        past = remember(past, d, spec(), NOW + timedelta(seconds=later), written=None)


@pytest.mark.parametrize("kind", ["u", "v"])
def test_no_ready_pod_is_no_reading(kind: str) -> None:
    # GetResourceReplicas: "did not receive metrics for any ready pods" is an error, and an
    # invalid metric never scales down (computeReplicasForMetrics); devscale holds the same way
    # for Value, where the HPA would multiply by 0 ready pods
    d = decide(ready_obs(4, 0, 4, (kind, 10, 70)), spec(), History(), NOW)
    assert (d.desired_replicas, d.reason) == (4, "NoMetrics")
    assert "no ready pods" in (d.proposals[0].error or "")


@pytest.mark.parametrize("kind", ["u", "v", "a"])
def test_negative_reading_is_no_reading(kind: str) -> None:
    # a queue answering -4 waiting jobs must not shrink the workers to their minimum
    d = decide(obs(3, (kind, -4, 5)), spec(), History(), NOW)
    assert (d.desired_replicas, d.reason) == (3, "NoMetrics")
    assert d.proposals[0].error == "negative reading -4 is not a load"
    d = decide(obs(3, (kind, -4, 5), ("a", 600, 100)), spec(), History(), NOW)
    assert d.desired_replicas == 6  # the other metric may still scale up


def test_zero_is_a_valid_reading_for_every_type() -> None:
    # an idle CPU, an empty queue, no requests: all real readings that may scale down
    for kind in ("u", "v", "a"):
        d = decide(obs(4, (kind, 0, 5)), spec(), History(), NOW)
        assert d.desired_replicas == 1, kind


def test_no_scale_up_into_a_cluster_that_cannot_place_the_pods() -> None:
    # devscale's extra (the HPA has none): pods Pending as Unschedulable hold a scale-up, with
    # the scheduler's reason and how long it has lasted; a scale-down is not held
    stuck = Unschedulable(3, 8, ago(360), "0/3 nodes are available: 3 Insufficient cpu.")
    hot = Observation("api", 8, obs(8, ("u", 140, 70)).readings, ready_pods=5, unready_pods=3,
                      unschedulable=stuck)
    d = decide(hot, spec(max_replicas=20), History(), NOW)
    assert (d.desired_replicas, d.reason) == (8, "ScaleUpUnschedulable")
    assert d.message.startswith("capacity: 3 of 8 pods unschedulable for 6 min: 0/3 nodes are "
                                "available: 3 Insufficient cpu.")
    cold = Observation("api", 8, obs(8, ("u", 7, 70)).readings, ready_pods=5, unready_pods=3,
                       unschedulable=stuck)
    assert decide(cold, spec(), History(), NOW).desired_replicas < 8


# Property tests: for any readings, history and behaviour, the HPA's guarantees hold.
policies = st.builds(ScalingPolicy, st.sampled_from(["Pods", "Percent"]),
                     st.integers(1, 200), st.integers(1, 600))
rules = st.builds(ScalingRules, st.integers(0, 600), st.sampled_from(["Max", "Min", "Disabled"]),
                  st.lists(policies, min_size=1, max_size=3).map(tuple))
readings = st.one_of(st.none(), st.floats(-100, 10_000, allow_nan=False))
kinds = st.sampled_from(["Utilization", "Value", "AverageValue"])
history = st.builds(
    History,
    st.lists(st.builds(Recommendation, st.integers(0, 900).map(ago), st.integers(0, 60)),
             max_size=8).map(tuple),
    st.lists(st.builds(ScaleEvent, st.integers(0, 900).map(ago), st.integers(1, 60),
                       st.integers(1, 60)), max_size=5).map(tuple),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Observation, PolicySpec, History]:
    low = draw(st.integers(1, 20))
    high = draw(st.integers(low, 60))
    s = PolicySpec(low, high, draw(st.floats(0, 0.5)), draw(rules), draw(rules),
                   draw(st.integers(0, 300)), draw(st.integers(0, 300)))
    current = draw(st.integers(low, high))
    values = draw(st.lists(st.tuples(kinds, readings), min_size=1, max_size=5))
    ready = draw(st.integers(0, current + 2))
    sampled = draw(st.one_of(st.none(), st.integers(0, current + 2)))
    o = Observation("api", current, tuple(
        MetricReading(f"m{i}", kind, 10, v, None, sampled) for i, (kind, v) in enumerate(values)),
        ready_pods=ready, unready_pods=draw(st.integers(0, 3)))
    return o, s, draw(history)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_property_stays_in_range_and_never_shrinks_on_missing_data(
        case: tuple[Observation, PolicySpec, History]) -> None:
    o, s, h = case
    d = decide(o, s, h, NOW)
    assert s.min_replicas <= d.desired_replicas <= s.max_replicas
    if any(p.replicas is None for p in d.proposals):  # absent, negative, or no ready pod
        assert d.desired_replicas >= o.current_replicas


@settings(max_examples=400, deadline=None)
@given(cases())
def test_property_never_moves_further_than_the_policies_allow(
        case: tuple[Observation, PolicySpec, History]) -> None:
    from devtrip_scale.scaling.policy import scale_down_limit, scale_up_limit

    o, s, h = case
    d = decide(o, s, h, NOW)
    if d.desired_replicas > o.current_replicas:
        assert d.desired_replicas <= max(scale_up_limit(o.current_replicas, s.scale_up,
                                                        h.scale_events, NOW), o.current_replicas)
    if d.desired_replicas < o.current_replicas:
        assert d.desired_replicas >= min(scale_down_limit(o.current_replicas, s.scale_down,
                                                          h.scale_events, NOW),
                                         o.current_replicas)


def reference_stabilize(current: int, wanted: int, up_window: int, down_window: int,
                        recs: tuple[Recommendation, ...]) -> tuple[int, datetime | None]:
    """`stabilizeRecommendationWithBehaviors` written plainly: both windows over every entry,
    min(max(current, lowest of the up window), highest of the down window), `wanted` in both;
    held until the newest entry that pins the result leaves its window."""
    if not recs:
        recs = (Recommendation(NOW, current),)
    up_cut, down_cut = ago(up_window), ago(down_window)
    up = min([wanted, *(r.replicas for r in recs if r.at > up_cut)])
    down = max([wanted, *(r.replicas for r in recs if r.at > down_cut)])
    result = min(max(current, up), down)
    if result == wanted:
        return result, None
    if result < wanted:
        pins = [r.at for r in recs if r.at > up_cut and r.replicas <= result]
        return result, max(pins) + timedelta(seconds=up_window) if pins else None
    pins = [r.at for r in recs if r.at > down_cut and r.replicas >= result]
    return result, max(pins) + timedelta(seconds=down_window) if pins else None


@settings(max_examples=600, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from([0, 15, 60, 300]),
       st.sampled_from([0, 15, 60, 300]),
       st.lists(st.builds(Recommendation, st.integers(0, 400).map(ago), st.integers(1, 12)),
                max_size=8))
def test_property_stabilisation_reads_one_window_in_one_pass_and_agrees_with_both(
        current: int, wanted: int, up: int, down: int, recs: list[Recommendation]) -> None:
    # the policy reads only the window of its direction, once; in any order of the history it
    # gives what the plain two-window formula gives, and the same time the hold ends
    from devtrip_scale.scaling.policy import _stabilize

    s = spec(scale_up=ScalingRules(up, "Max", (ScalingPolicy("Pods", 4, 15),)),
             scale_down=ScalingRules(down, "Max", (ScalingPolicy("Percent", 100, 15),)))
    assert _stabilize(current, wanted, s, tuple(recs), NOW) == reference_stabilize(
        current, wanted, up, down, tuple(recs))
