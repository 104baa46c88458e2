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

import math
from datetime import datetime, timedelta
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


def propose(reading: MetricReading, current: int, spec: PolicySpec, *,
            ready: int | None = None, unready: int = 0) -> Proposal:
    """One metric's replica proposal, as the HPA's replica calculator makes it."""
    return _propose(reading, current, current if ready is None else ready, unready,
                    _tolerance(spec.scale_up, spec.tolerance),
                    _tolerance(spec.scale_down, spec.tolerance))


def _propose(reading: MetricReading, current: int, ready: int, unready: int, up_tol: float,
             down_tol: float) -> Proposal:
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
    """
    value = reading.value
    if value is None:
        return Proposal(reading.name, reading.type, reading.target, None, None, False,
                        reading.error)
    if value < 0:  # a count, utilisation, rate or latency below zero is not a load
        return Proposal(reading.name, reading.type, reading.target, None, None, False,
                        f"negative reading {value:g} is not a load")
    kind = reading.type
    sampled = reading.pods
    # groupPods: ready pods that have no sample in the reading are missing pods
    missing = ready - sampled if sampled is not None and 0 < sampled < ready else 0

    if kind == "AverageValue":
        total, per_pod = _milli(value), _milli(reading.target)
        if missing and current:
            # calcPlainMetricReplicas on the sampled pods' average (GetMetricUsageRatio)
            return _recount(reading, current, total / (ready - missing), per_pod, per_pod,
                            ready - missing, missing, unready, up_tol, down_tol)
        ratio = total / (per_pod * current) if current else math.inf
        if (1.0 - down_tol) <= ratio <= (1.0 + up_tol):
            return Proposal(reading.name, kind, reading.target, value, current, True)
        return Proposal(reading.name, kind, reading.target, value,
                        min(math.ceil(total / per_pod), INT32_MAX), False)
    if kind == "Utilization":
        # The HPA truncates utilisation to whole percent (metrics/utilization.go).
        ratio = math.floor(value) / reading.target
    else:
        ratio = _milli(value) / _milli(reading.target)
    if current == 0:
        return Proposal(reading.name, kind, reading.target, value,
                        min(math.ceil(ratio), INT32_MAX), False)
    within = (1.0 - down_tol) <= ratio <= (1.0 + up_tol)
    if kind == "Value" and within:
        return Proposal(reading.name, kind, reading.target, value, current, True)
    if ready == 0:
        return Proposal(reading.name, kind, reading.target, value, None, False,
                        "no ready pods to weigh the reading against (the HPA: \"did not "
                        "receive metrics for any ready pods\")")
    if kind == "Value" or (missing == 0 and (unready == 0 or ratio <= 1.0)):
        if within:
            return Proposal(reading.name, kind, reading.target, value, current, True)
        return Proposal(reading.name, kind, reading.target, value,
                        min(_same_direction(math.ceil(ratio * ready), ratio, current),
                            INT32_MAX), False)
    # Missing pods, or a scale-up with unready pods: count them, then the ratio again.
    return _recount(reading, current, value, reading.target, max(100.0, reading.target),
                    ready - missing, missing, unready, up_tol, down_tol)


def _recount(reading: MetricReading, current: int, average: float, target: float,
             fallback: float, sampled: int, missing: int, unready: int, up_tol: float,
             down_tol: float) -> Proposal:
    """The second half of `GetResourceReplicas` / `calcPlainMetricReplicas`.

    `average` is the sampled pods' average against `target` in the same unit (whole percent of
    requests for Utilization, as `GetResourceUtilizationRatio` truncates; milli-units per pod
    for a per-pod metric, as `GetMetricUsageRatio` divides integers), `fallback` what a missing
    pod is taken to use on a scale-down. On a scale-up the
    missing pods, and the unready ones, use nothing; the usage ratio is computed again over all
    the pods counted; a new ratio within tolerance or across 1 keeps the current count, and so
    does a result that moves against it.
    """
    ratio = math.floor(average) / target
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
    new_ratio = math.floor(used / counted) / target
    value = reading.value
    if ((1.0 - down_tol) <= new_ratio <= (1.0 + up_tol) or (ratio < 1.0 < new_ratio)
            or (new_ratio < 1.0 < ratio)):
        return Proposal(reading.name, reading.type, reading.target, value, current, True)
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        replicas = current
    return Proposal(reading.name, reading.type, reading.target, value,
                    min(replicas, INT32_MAX), False)


def _same_direction(replicas: int, ratio: float, current: int) -> int:
    """A load above target never proposes fewer replicas, one below it never more.

    The HPA applies this after counting unready pods ("the change of metrics length would cause
    a change in scale direction"); devscale applies it to every ready-pod product, so a Deployment
    whose new pods are not Ready yet is not shrunk while its load is above target.
    """
    if (ratio > 1.0 and replicas < current) or (ratio < 1.0 and replicas > current):
        return current
    return replicas


def decide(obs: Observation, spec: PolicySpec, history: History, now: datetime) -> Decision:
    """Decide the replicas of one Deployment from its readings, its history and `now`.

    `obs.current_replicas` is the scale subresource's `spec.replicas`; `history` holds the earlier
    runs' recommendations and scale events (an empty history is a first sync); `now` is the
    decision time, timezone-aware. The result carries the final replicas, the un-limited
    recommendation, every metric's proposal and the rule that limited the result, named as the
    HPA names its conditions (`ScaleUpLimit`, `TooFewReplicas`, `ScaleDownStabilized`, …).
    """
    current = obs.current_replicas
    up_tol = _tolerance(spec.scale_up, spec.tolerance)
    down_tol = _tolerance(spec.scale_down, spec.tolerance)
    ready = current if obs.ready_pods is None else obs.ready_pods
    proposals = tuple(_propose(r, current, ready, obs.unready_pods, up_tol, down_tol)
                      for r in obs.readings)

    def verdict(desired: int, reason: Reason, message: str, recommendation: int | None,
                deciding_metric: str | None = None, held_until: datetime | None = None,
                limits: tuple[str, ...] = ()) -> Decision:
        action: Action = "none"
        if desired > current:
            action = "scale_up"
        elif desired < current:
            action = "scale_down"
        elif reason in HOLD_REASONS:
            action = "hold"
        return Decision(obs.deployment, current, desired, recommendation, action, reason,
                        message, proposals, deciding_metric, held_until, limits,
                        obs.ready_pods)

    if current == 0 and spec.min_replicas != 0:
        return verdict(0, "ScalingDisabled", "the target has 0 replicas: scaling is disabled",
                       recommendation=None)
    if current > spec.max_replicas:
        return verdict(spec.max_replicas, "TooManyReplicas",
                       f"current replicas above maxReplicas {spec.max_replicas}",
                       recommendation=None)
    if current < spec.min_replicas:
        return verdict(spec.min_replicas, "TooFewReplicas",
                       f"current replicas below minReplicas {spec.min_replicas}",
                       recommendation=None)

    best: Proposal | None = None
    missing: list[str] = []
    for p in proposals:  # the highest proposal wins; the first of equals names the metric
        if p.replicas is None:
            missing.append(p.name)
        elif best is None or p.replicas > (best.replicas or 0):
            best = p
    if best is None:
        return verdict(current, "NoMetrics", "no metric has a reading: replicas held",
                       recommendation=None)
    wanted = best.replicas or 0
    if missing and wanted < current:
        return verdict(current, "MissingMetrics",
                       f"no reading for {', '.join(missing)}: not scaling down on partial data",
                       recommendation=None, deciding_metric=best.name)

    limits: list[str] = []
    stabilized, held_until = _stabilize(current, wanted, spec, history.recommendations, now)
    reason: Reason = "WithinTolerance" if best.within_tolerance else "DesiredWithinRange"
    value, message = stabilized, ""
    if stabilized != wanted:
        reason = "ScaleUpStabilized" if wanted >= current else "ScaleDownStabilized"
        window = (spec.scale_up if reason == "ScaleUpStabilized" else spec.scale_down)
        message = (f"{window.stabilization_window_seconds}s "
                   f"{'scale-up' if reason == 'ScaleUpStabilized' else 'scale-down'} "
                   f"stabilization window holds {stabilized}")
        limits.append(reason)

    value, cooled = _cooldown(current, value, spec, history.scale_events, now)
    if cooled:
        reason, message = cooled
        limits.append(reason)
        held_until = None

    if value > current and obs.unschedulable is not None:
        # devscale's extra: no more pods asked of a cluster that cannot place those it has
        value, reason = current, "ScaleUpUnschedulable"
        message = (f"{obs.unschedulable.text(now)}; not scaling up into a cluster that cannot "
                   "place the pods it already has")
        limits.append(reason)
        held_until = None

    final, rate_reason, rate_message = _rate_limit(current, value, spec, history.scale_events, now)
    if final != value:
        reason, message = rate_reason, rate_message
        limits.append(rate_reason)
    if not message:
        message = _plain_message(reason, best, wanted)
    return verdict(final, reason, message, recommendation=wanted, deciding_metric=best.name,
                   held_until=held_until if reason.endswith("Stabilized") else None,
                   limits=tuple(limits))


def remember(history: History, decision: Decision, spec: PolicySpec, now: datetime,
             *, written: int | None) -> History:
    """The history after this run: its recommendation and, if it wrote, its scale event.

    `written` is the replica count devscale wrote this run (None when it wrote nothing). Entries
    older than the longest window, period or cooldown are dropped, so the history stays bounded;
    the newest recommendation is always kept.
    """
    recs = history.recommendations
    if decision.recommendation is not None:
        if not recs:
            recs = (Recommendation(now, decision.current_replicas),)  # the first sync's seed
        recs = (*recs, Recommendation(now, decision.recommendation))
    events = history.scale_events
    last_written = history.last_written
    if written is not None and written != decision.current_replicas:
        events = (*events, ScaleEvent(now, decision.current_replicas, written))
        last_written = written
    cutoff = now - timedelta(seconds=spec.memory_seconds)
    return History(_newer(recs, cutoff, keep_last=True), _newer(events, cutoff), last_written)


def _newer(entries: tuple[_Timed, ...], cutoff: datetime, *, keep_last: bool = False
           ) -> tuple[_Timed, ...]:
    """Entries after `cutoff`; they are in time order, so only a prefix can have aged out."""
    start = 0
    last = len(entries) - 1 if keep_last else len(entries)
    while start < last and entries[start].at <= cutoff:
        start += 1
    return entries[start:] if start else entries


def _tolerance(rules: ScalingRules, default: float) -> float:
    return default if rules.tolerance is None else rules.tolerance


def _milli(value: float) -> int:
    """The HPA compares quantities in milli-units; so does devscale."""
    return round(value * 1000)


def _plain_message(reason: Reason, best: Proposal, wanted: int) -> str:
    if reason == "WithinTolerance":
        return f"{best.name} is within the tolerance of its target"
    return f"{best.name} asks for {wanted}"


def _stabilize(current: int, wanted: int, spec: PolicySpec,
               recs: tuple[Recommendation, ...], now: datetime) -> tuple[int, datetime | None]:
    """Bound `wanted` by the recommendations inside the windows; say until when it holds."""
    if not recs:
        recs = (Recommendation(now, current),)  # first sync: as the HPA seeds its window
    up_window = spec.scale_up.stabilization_window_seconds
    down_window = spec.scale_down.stabilization_window_seconds
    up_cut, down_cut = now - timedelta(seconds=up_window), now - timedelta(seconds=down_window)
    up = down = wanted
    for at, replicas in recs:
        if at > up_cut and replicas < up:
            up = replicas
        if at > down_cut and replicas > down:
            down = replicas
    result = min(max(current, up), down)
    if result == wanted:
        return result, None
    # Held at `result` until the last recommendation that pins it there leaves its window.
    if result < wanted:
        pins = [r.at for r in recs if r.at > up_cut and r.replicas <= result]
        return result, (max(pins) + timedelta(seconds=up_window) if pins else None)
    pins = [r.at for r in recs if r.at > down_cut and r.replicas >= result]
    return result, (max(pins) + timedelta(seconds=down_window) if pins else None)


def _cooldown(current: int, value: int, spec: PolicySpec, events: tuple[ScaleEvent, ...],
              now: datetime) -> tuple[int, tuple[Reason, str] | None]:
    """devscale's extra: no scale in a direction within N s of the last scale event."""
    if not events or value == current:
        return value, None
    up = value > current
    seconds = spec.scale_up_cooldown_seconds if up else spec.scale_down_cooldown_seconds
    until = max(e.at for e in events) + timedelta(seconds=seconds)
    if not seconds or until <= now:
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
            proposals.append(math.ceil(start * (1 + p.value / 100)))
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
