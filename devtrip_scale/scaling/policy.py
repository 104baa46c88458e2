"""The Kubernetes HPA's (autoscaling/v2) replica arithmetic as pure functions: no I/O, no clock.

`decide(observation, spec, history, now)` is devscale's public library API. `check`, the in-cluster
loop and `simulate` all call it, so one set of readings gives one answer wherever it runs. It
follows `pkg/controller/podautoscaler` of Kubernetes:

1. each metric proposes replicas (`replica_calculator.go`): Utilization and Value give
   ceil(ready pods × reading / target) (ceil(reading / target) from 0 replicas), AverageValue
   gives ceil(total / target); a usage ratio within the tolerance band (default 10 %, per
   direction if `scaleUp.tolerance`/`scaleDown.tolerance` are set) proposes the current count; a
   negative reading, or no ready pod to weigh a ratio against, is no reading; when a
   Utilization or AverageValue reading stands on fewer pods than are ready, the others are
   `groupPods`' missing pods (0 on a scale-up, 100 % or the target on a scale-down);
2. the highest proposal wins; when some metrics have no reading the others may scale up but never
   down, and with no reading at all the replicas are held (`computeReplicasForMetrics`);
3. a target with 0 replicas and min > 0 is left alone; one outside [min, max] is brought inside;
4. stabilisation: scale up takes the lowest recommendation of the scale-up window, scale down the
   highest of the scale-down window; an entry exactly as old as a window is outside it
   (`stabilizeRecommendationWithBehaviors`);
5. devscale's optional cooldowns: no scale in a direction within N s of the last scale event;
6. devscale's extra: no scale-up while pods of the Deployment cannot be scheduled;
7. rate policies measured from the replicas at the start of each period, found by undoing the
   scale events inside it, selected with Max/Min/Disabled, then the clamp to [min, max]
   (`convertDesiredReplicasWithBehaviorRate`).

`remember(history, decision, ...)` returns the history the next run needs (pure too).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from math import ceil, floor
from typing import TypeVar

from devtrip_scale.scaling.models import (
    HOLD_REASONS,
    Action,
    Decision,
    History,
    MetricReading,
    Observation,
    PolicySpec,
    Proposal,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalingRules,
)

INT32_MAX = 2**31 - 1
_Timed = TypeVar("_Timed", Recommendation, ScaleEvent)
# NamedTuples built from a ready tuple, without the keyword layer of their generated __new__.
_new = tuple.__new__


def propose(reading: MetricReading, current: int, spec: PolicySpec, *,
            ready: int | None = None, unready: int = 0) -> Proposal:
    """One metric's replica proposal, as the HPA's replica calculator makes it."""
    timing = spec.timing
    return _propose(reading, current, current if ready is None else ready, unready,
                    1.0 - timing.down_tolerance, 1.0 + timing.up_tolerance)


def _propose(reading: MetricReading, current: int, ready: int, unready: int, low: float,
             high: float) -> Proposal:
    """`replica_calculator.go`, with a Deployment's aggregate reading in place of pod metrics.

    Utilization follows `GetResourceReplicas`: the ratio is multiplied by the ready pods; when
    the reading stands on fewer pods than are ready (`reading.pods`, the pod series behind the
    aggregate), the ready pods without samples are `groupPods`' missing pods: 0 % on a
    scale-up, max(100 %, target) on a scale-down; on a scale-up with unready pods those count as
    using nothing too; the ratio is then computed again, and a result that would reverse the
    direction keeps the current count. AverageValue with fewer sampled pods than ready ones is a
    per-pod metric (`calcPlainMetricReplicas`: missing pods are 0 on a scale-up, the target on a
    scale-down); otherwise it needs no pod count (`GetExternalPerPodMetricReplicas`):
    ceil(total / target). Value follows `getUsageRatioReplicaCount`: tolerance first, then
    ratio × ready pods. With 0 current replicas every type proposes ceil(ratio), tolerance
    ignored: the scale-from-zero rule.

    `low`/`high` bound the tolerance band of the usage ratio (1 − down / 1 + up tolerance).
    Called for every metric of every decision (a month's replay makes a million calls): the
    reading is unpacked once, the band comes computed, and the result is built without
    NamedTuple's keyword layer.
    """
    name, kind, target, value, error, sampled = reading
    if value is None:
        return _new(Proposal, (name, kind, target, None, None, False, error))
    if value < 0:  # a count, utilisation, rate or latency below zero is not a load
        return _new(Proposal, (name, kind, target, None, None, False,
                               f"negative reading {value:g} is not a load"))
    # groupPods: ready pods that have no sample in the reading are missing pods
    missing = ready - sampled if sampled is not None and 0 < sampled < ready else 0

    if kind == "AverageValue":
        # The HPA compares quantities in milli-units; so does devscale.
        total, per_pod = round(value * 1000), round(target * 1000)
        if current:
            if missing:
                # calcPlainMetricReplicas on the sampled pods' average (GetMetricUsageRatio)
                return _recount(reading, current, total / (ready - missing), per_pod, per_pod,
                                ready - missing, missing, unready, low, high)
            ratio = total / (per_pod * current)
            if low <= ratio <= high:
                return _new(Proposal, (name, kind, target, value, current, True, None))
        replicas = ceil(total / per_pod)
        return _new(Proposal, (name, kind, target, value,
                               replicas if replicas < INT32_MAX else INT32_MAX, False, None))
    if kind == "Utilization":
        # The HPA truncates utilisation to whole percent (metrics/utilization.go).
        ratio = floor(value) / target
    else:
        ratio = round(value * 1000) / round(target * 1000)
    if current == 0:
        replicas = ceil(ratio)
        return _new(Proposal, (name, kind, target, value,
                               replicas if replicas < INT32_MAX else INT32_MAX, False, None))
    within = low <= ratio <= high
    if kind == "Value":
        if within:
            return _new(Proposal, (name, kind, target, value, current, True, None))
    elif not missing and (not unready or ratio <= 1.0):
        pass
    elif ready:
        # Missing pods, or a scale-up with unready pods: count them, then the ratio again.
        return _recount(reading, current, value, target, max(100.0, target), ready - missing,
                        missing, unready, low, high)
    if ready == 0:
        return _new(Proposal, (name, kind, target, value, None, False,
                               "no ready pods to weigh the reading against (the HPA: \"did "
                               "not receive metrics for any ready pods\")"))
    if within:
        return _new(Proposal, (name, kind, target, value, current, True, None))
    replicas = ceil(ratio * ready)
    # A load above target never proposes fewer replicas, one below it never more. The HPA
    # applies this after counting unready pods ("the change of metrics length would cause a
    # change in scale direction"); devscale applies it to every ready-pod product, so a
    # Deployment whose new pods are not Ready yet is not shrunk while its load is above target.
    if (ratio > 1.0 and replicas < current) or (ratio < 1.0 and replicas > current):
        replicas = current
    return _new(Proposal, (name, kind, target, value,
                           replicas if replicas < INT32_MAX else INT32_MAX, False, None))


def _recount(reading: MetricReading, current: int, average: float, target: float,
             fallback: float, sampled: int, missing: int, unready: int, low: float,
             high: float) -> Proposal:
    """The second half of `GetResourceReplicas` / `calcPlainMetricReplicas`.

    `average` is the sampled pods' average against `target` in the same unit (whole percent of
    requests for Utilization, as `GetResourceUtilizationRatio` truncates; milli-units per pod
    for a per-pod metric, as `GetMetricUsageRatio` divides integers), `fallback` what a missing
    pod is taken to use on a scale-down. On a scale-up the
    missing pods, and the unready ones, use nothing; the usage ratio is computed again over all
    the pods counted; a new ratio within tolerance or across 1 keeps the current count, and so
    does a result that moves against it.
    """
    ratio = floor(average) / target
    up_with_unready = unready > 0 and ratio > 1.0
    counted, used = sampled, average * sampled
    if missing:
        if ratio < 1.0:
            counted += missing
            used += fallback * missing
        elif ratio > 1.0:
            counted += missing
    if up_with_unready:
        counted += unready
    new_ratio = floor(used / counted) / target
    value = reading.value
    if (low <= new_ratio <= high or (ratio < 1.0 < new_ratio)
            or (new_ratio < 1.0 < ratio)):
        return Proposal(reading.name, reading.type, reading.target, value, current, True)
    replicas = ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        replicas = current
    return Proposal(reading.name, reading.type, reading.target, value,
                    min(replicas, INT32_MAX), False)


def decide(obs: Observation, spec: PolicySpec, history: History, now: datetime) -> Decision:
    """Decide the replicas of one Deployment from its readings, its history and `now`.

    `obs.current_replicas` is the scale subresource's `spec.replicas`; `history` holds the earlier
    runs' recommendations and scale events (an empty history is a first sync); `now` is the
    decision time, timezone-aware. The result carries the final replicas, the un-limited
    recommendation, every metric's proposal and the rule that limited the result, named as the
    HPA names its conditions (`ScaleUpLimit`, `TooFewReplicas`, `ScaleDownStabilized`, …).
    """
    _, current, readings, ready, unready, unschedulable = obs
    timing = spec.timing
    low, high = 1.0 - timing.down_tolerance, 1.0 + timing.up_tolerance
    if ready is None:
        ready = current
    made = []  # a plain loop: a comprehension costs a frame per call in CPython 3.11
    for r in readings:
        made.append(_propose(r, current, ready, unready, low, high))
    proposals = tuple(made)

    if current == 0 and spec.min_replicas != 0:
        return _verdict(obs, proposals, 0, "ScalingDisabled",
                        "the target has 0 replicas: scaling is disabled")
    if current > spec.max_replicas:
        return _verdict(obs, proposals, spec.max_replicas, "TooManyReplicas",
                        f"current replicas above maxReplicas {spec.max_replicas}")
    if current < spec.min_replicas:
        return _verdict(obs, proposals, spec.min_replicas, "TooFewReplicas",
                        f"current replicas below minReplicas {spec.min_replicas}")

    best: Proposal | None = None
    wanted = -1
    missing: list[str] | None = None
    for p in proposals:  # the highest proposal wins; the first of equals names the metric
        replicas = p[4]
        if replicas is None:
            if missing is None:
                missing = [p[0]]
            else:
                missing.append(p[0])
        elif replicas > wanted:
            best, wanted = p, replicas
    if best is None:
        return _verdict(obs, proposals, current, "NoMetrics",
                        "no metric has a reading: replicas held")
    if missing and wanted < current:
        return _verdict(obs, proposals, current, "MissingMetrics",
                        f"no reading for {', '.join(missing)}: not scaling down on partial "
                        "data", deciding_metric=best.name)

    limits: tuple[str, ...] = ()   # grown only when a rule limits: most decisions have none
    recs, events, _ = history
    if wanted == current:   # nothing for a window to hold
        stabilized, held_until = wanted, None
    else:
        stabilized, held_until = _stabilize(current, wanted, spec, recs, now)
    name = best[0]
    reason: Reason = "WithinTolerance" if best[5] else "DesiredWithinRange"
    value, message = stabilized, ""
    if stabilized != wanted:
        up = wanted >= current
        reason = "ScaleUpStabilized" if up else "ScaleDownStabilized"
        window = spec.scale_up if up else spec.scale_down
        message = (f"{window.stabilization_window_seconds}s "
                   f"{'scale-up' if up else 'scale-down'} "
                   f"stabilization window holds {stabilized}")
        limits = (reason,)

    if events and value != current:
        value, cooled = _cooldown(current, value, spec, events, now)
        if cooled:
            reason, message = cooled
            limits += (reason,)
            held_until = None

    if value > current and unschedulable is not None:
        # devscale's extra: no more pods asked of a cluster that cannot place those it has
        value, reason = current, "ScaleUpUnschedulable"
        message = (f"{unschedulable.text(now)}; not scaling up into a cluster that cannot "
                   "place the pods it already has")
        limits += (reason,)
        held_until = None

    final = value
    if value != current:
        final, rate_reason, rate_message = _rate_limit(current, value, spec, events, now)
        if final != value:
            reason, message = rate_reason, rate_message
            limits += (rate_reason,)
    if not message:
        message = (f"{name} is within the tolerance of its target"
                   if reason == "WithinTolerance" else f"{name} asks for {wanted}")
    return _verdict(obs, proposals, final, reason, message, wanted, name,
                    held_until if held_until is not None and reason.endswith("Stabilized")
                    else None, limits)


def _verdict(obs: Observation, proposals: tuple[Proposal, ...], desired: int, reason: Reason,
             message: str, recommendation: int | None = None,
             deciding_metric: str | None = None, held_until: datetime | None = None,
             limits: tuple[str, ...] = ()) -> Decision:
    current = obs.current_replicas
    action: Action = "none"
    if desired > current:
        action = "scale_up"
    elif desired < current:
        action = "scale_down"
    elif reason in HOLD_REASONS:
        action = "hold"
    return _new(Decision, (obs.deployment, current, desired, recommendation, action, reason,
                           message, proposals, deciding_metric, held_until, limits,
                           obs.ready_pods))


def remember(history: History, decision: Decision, spec: PolicySpec, now: datetime,
             *, written: int | None) -> History:
    """The history after this run: its recommendation and, if it wrote, its scale event.

    `written` is the replica count devscale wrote this run (None when it wrote nothing). Entries
    older than the longest window, period or cooldown are dropped, so the history stays bounded;
    the newest recommendation is always kept.
    """
    recs, events, last_written = history
    current = decision.current_replicas
    recommendation = decision.recommendation
    cutoff = now - spec.timing.memory
    # Entries are in time order: only a prefix can have aged out (the newest rec always stays).
    if recommendation is not None:
        new = _new(Recommendation, (now, recommendation))
        if recs:  # every earlier entry may age out: this run's is the newest
            start, n = 0, len(recs)
            while start < n and recs[start][0] <= cutoff:
                start += 1
            recs = (*recs[start:], new) if start else (*recs, new)
        else:  # the first sync's seed, then this run's (the seed ages out at once when the
            # spec remembers nothing: no window, period or cooldown)
            recs = (new,) if now <= cutoff else (_new(Recommendation, (now, current)), new)
    elif recs and recs[0][0] <= cutoff:
        recs = _newer(recs, cutoff, keep_last=True)
    if written is not None and written != current:
        events = (*events, _new(ScaleEvent, (now, current, written)))
        last_written = written
    if events and events[0][0] <= cutoff:
        events = _newer(events, cutoff)
    return _new(History, (recs, events, last_written))


def _newer(entries: tuple[_Timed, ...], cutoff: datetime, *, keep_last: bool = False
           ) -> tuple[_Timed, ...]:
    """Entries after `cutoff`; they are in time order, so only a prefix can have aged out."""
    start = 0
    last = len(entries) - 1 if keep_last else len(entries)
    while start < last and entries[start].at <= cutoff:
        start += 1
    return entries[start:] if start else entries


def _stabilize(current: int, wanted: int, spec: PolicySpec,
               recs: tuple[Recommendation, ...], now: datetime) -> tuple[int, datetime | None]:
    """Bound `wanted` by the recommendations inside the windows; say until when it holds.

    `stabilizeRecommendationWithBehaviors`: min(max(current, lowest of the scale-up window),
    highest of the scale-down window), `wanted` included in both. A scale-up is bounded by the
    scale-up window alone and a scale-down by the scale-down window alone, so one window is
    read, in one pass; at `wanted` = current nothing can hold. The hold lasts until the newest
    recommendation that pins the result leaves its window.
    """
    if wanted == current:
        return wanted, None
    if not recs:
        recs = (Recommendation(now, current),)  # first sync: as the HPA seeds its window
    timing = spec.timing
    if wanted > current:
        window = timing.up_window
        cut = now - window
        low, low_at, under_at = wanted, None, None  # under_at: the newest entry ≤ current
        for at, replicas in recs:
            if at > cut:
                if replicas <= current:
                    if under_at is None or at > under_at:
                        under_at = at
                elif replicas < low:
                    low, low_at = replicas, at
                elif replicas == low and (low_at is None or at > low_at):
                    low_at = at
        if under_at is not None:
            return current, under_at + window
        if low < wanted and low_at is not None:
            return low, low_at + window
        return wanted, None
    window = timing.down_window
    cut = now - window
    high, high_at, over_at = wanted, None, None     # over_at: the newest entry ≥ current
    for at, replicas in recs:
        if at > cut:
            if replicas >= current:
                if over_at is None or at > over_at:
                    over_at = at
            elif replicas > high:
                high, high_at = replicas, at
            elif replicas == high and (high_at is None or at > high_at):
                high_at = at
    if over_at is not None:
        return current, over_at + window
    if high > wanted and high_at is not None:
        return high, high_at + window
    return wanted, None


def _cooldown(current: int, value: int, spec: PolicySpec, events: tuple[ScaleEvent, ...],
              now: datetime) -> tuple[int, tuple[Reason, str] | None]:
    """devscale's extra: no scale in a direction within N s of the last scale event."""
    if not events or value == current:
        return value, None
    up = value > current
    seconds = spec.scale_up_cooldown_seconds if up else spec.scale_down_cooldown_seconds
    if not seconds:
        return value, None
    until = max(e.at for e in events) + (spec.timing.up_cooldown if up
                                         else spec.timing.down_cooldown)
    if until <= now:
        return value, None
    reason: Reason = "ScaleUpCooldown" if up else "ScaleDownCooldown"
    return current, (reason, f"{'scale-up' if up else 'scale-down'} cooldown of {seconds}s "
                             f"after the last scale event, until {until.isoformat()}")


def _changed_in_period(period: int, events: tuple[ScaleEvent, ...], now: datetime,
                       up: bool) -> int:
    cutoff = now - timedelta(seconds=period)
    return sum(
        abs(e.to_replicas - e.from_replicas)
        for e in events
        if e.at > cutoff and (e.to_replicas > e.from_replicas) == up
    )


def _period_start(current: int, period: int, events: tuple[ScaleEvent, ...],
                  now: datetime) -> int:
    added = _changed_in_period(period, events, now, up=True)
    removed = _changed_in_period(period, events, now, up=False)
    return current - added + removed


def scale_up_limit(current: int, rules: ScalingRules, events: tuple[ScaleEvent, ...],
                   now: datetime) -> int:
    """`calculateScaleUpLimitWithScalingRules`: the most replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, p.period_seconds, events, now)
        if p.type == "Pods":
            proposals.append(start + p.value)
        else:
            proposals.append(ceil(start * (1 + p.value / 100)))
    if not proposals:
        return INT32_MAX
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(current: int, rules: ScalingRules, events: tuple[ScaleEvent, ...],
                     now: datetime) -> int:
    """`calculateScaleDownLimitWithBehaviors`: the fewest replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, p.period_seconds, events, now)
        if p.type == "Pods":
            proposals.append(start - p.value)
        else:
            proposals.append(int(start * (1 - p.value / 100)))
    if not proposals:
        return 0
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def _rate_limit(current: int, value: int, spec: PolicySpec, events: tuple[ScaleEvent, ...],
                now: datetime) -> tuple[int, Reason, str]:
    if value > current:
        limit = max(scale_up_limit(current, spec.scale_up, events, now), current)
        if spec.max_replicas > limit:
            if value > limit:
                why = ("scale-up is disabled (selectPolicy: Disabled)"
                       if spec.scale_up.select_policy == "Disabled"
                       else f"scale-up rate policies allow at most {limit} now")
                return limit, "ScaleUpLimit", why
        elif value > spec.max_replicas:
            return spec.max_replicas, "TooManyReplicas", (
                f"{value} wanted, capped at maxReplicas {spec.max_replicas}")
    elif value < current:
        limit = min(scale_down_limit(current, spec.scale_down, events, now), current)
        if spec.min_replicas < limit:
            if value < limit:
                why = ("scale-down is disabled (selectPolicy: Disabled)"
                       if spec.scale_down.select_policy == "Disabled"
                       else f"scale-down rate policies allow no fewer than {limit} now")
                return limit, "ScaleDownLimit", why
        elif value < spec.min_replicas:
            return spec.min_replicas, "TooFewReplicas", (
                f"{value} wanted, raised to minReplicas {spec.min_replicas}")
    return value, "DesiredWithinRange", ""
