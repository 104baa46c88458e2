"""Replay recorded load through the same `policy.decide` that `check` uses; measure the outcome.

Between two decisions the replicas stay as decided. When the recording carries the replicas it
was made with, Utilization readings are rescaled: the same demand over the simulated pods. What
`check` reads is demand over *all* pods (starting pods count in the requests, as in the CPU and
memory presets); how the service fares — time over target, the largest gap — is judged on the
*ready* pods, which follow a scale up `ready_delay` later (a scale down takes effect at once).
Totals (AverageValue) and Value readings are replayed as recorded.

A hole in the recording longer than `max_gap` (default: Prometheus' 5-minute staleness) is not
skipped silently: each gap is listed in the outcome, the replay sees no reading there (replicas
held, as `check` would hold them), and the measures stop `max_gap` after the last sample before
it: the time in a gap counts in no figure but `seconds_unmeasured`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from devtrip_scale.scaling import policy
from devtrip_scale.scaling.config import MetricModel, Settings
from devtrip_scale.scaling.models import History, MetricReading, Observation, PolicySpec
from devtrip_scale.scaling.replay.recording import Recording, Series

LOOKBACK = timedelta(minutes=5)   # Prometheus's staleness: an older sample is no reading


@dataclass(frozen=True)
class Options:
    interval: timedelta
    ready_delay: timedelta = timedelta(0)
    start_replicas: int | None = None
    max_gap: timedelta = LOOKBACK


@dataclass
class Step:
    """One decision of the replay."""

    at: datetime
    replicas: int
    desired: int
    recommendation: int | None
    reason: str
    load: float | None   # the highest reading/target ratio: 1.0 is exactly on target
    demand: float | None = None   # the replicas the load asks for: the highest metric's need


@dataclass
class Outcome:
    """What the policy would have done to one Deployment, and what it would have cost."""

    deployment: str
    steps: list[Step] = field(default_factory=list)
    scale_ups: int = 0
    scale_downs: int = 0
    replica_hours: float = 0.0
    seconds_over_target: dict[str, float] = field(default_factory=dict)
    seconds_at_max: float = 0.0
    largest_gap: int = 0
    largest_gap_at: datetime | None = None
    max_replicas: int = 0
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    seconds_unmeasured: float = 0.0


def simulate(recording: Recording, settings: Settings, options: Options) -> dict[str, Outcome]:
    """Replay every recorded Deployment; the result is keyed by Deployment name."""
    return {name: replay(name, series, settings, options)
            for name, series in sorted(recording.series.items())}


def spec_for(settings: Settings, deployment: str) -> PolicySpec:
    """A Deployment's policy: its own target entry when named, the scaling block otherwise."""
    target = next((t for t in settings.targets if t.deployment == deployment), None)
    return settings.policy_for(target)


def replay(name: str, series: Series, settings: Settings, options: Options) -> Outcome:
    spec = spec_for(settings, name)
    metrics = settings.metrics
    times = series.times
    recorded = series.replicas
    first = options.start_replicas or (recorded[0] if recorded and recorded[0] else None)
    replicas = first or spec.min_replicas
    timeline = _Timeline(times[0], replicas, options.ready_delay)
    outcome = Outcome(name, max_replicas=spec.max_replicas)
    history = History()
    at, end, i, n = times[0], times[-1], 0, len(times)
    while at <= end:
        while i + 1 < n and times[i + 1] <= at:
            i += 1
        fresh = at - times[i] <= LOOKBACK
        readings = tuple(
            MetricReading(m.name, m.target.type, m.target.value,
                          _reading(m, series, i, replicas) if fresh else None,
                          None if fresh else "no sample within 5 minutes")
            for m in metrics)
        decision = policy.decide(Observation(name, replicas, readings), spec, history, at)
        written = decision.desired_replicas if decision.desired_replicas != replicas else None
        history = policy.remember(history, decision, spec, at, written=written)
        outcome.steps.append(Step(at, replicas, decision.desired_replicas,
                                  decision.recommendation, decision.reason,
                                  _load(metrics, readings, replicas),
                                  demand(metrics, readings, replicas)))
        if written is not None:
            if written > replicas:
                outcome.scale_ups += 1
            else:
                outcome.scale_downs += 1
            replicas = written
            timeline.set(at, replicas)
        at += options.interval
    outcome.gaps = gaps(times, options.max_gap)
    _measure(outcome, series, metrics, spec, timeline, options)
    return outcome


def gaps(times: list[datetime], longest: timedelta) -> list[tuple[datetime, datetime]]:
    """Each pair of consecutive samples further apart than `longest`."""
    return [(a, b) for a, b in pairwise(times) if b - a > longest]


def _reading(metric: MetricModel, series: Series, i: int, pods: int) -> float | None:
    """The reading at sample `i` with `pods` pods: utilisation rescaled, the rest as recorded."""
    value = series.values[metric.name][i]
    if value is None or metric.target.type != "Utilization" or series.replicas is None:
        return value
    made_with = series.replicas[i]
    return value * made_with / pods if made_with and pods else value


def _load(metrics: tuple[MetricModel, ...], readings: tuple[MetricReading, ...],
          pods: int) -> float | None:
    """The highest reading/target ratio as `check` sees it with `pods` pods (1.0: on target)."""
    ratios = [r.value / (m.target.value * (pods or 1) if m.target.type == "AverageValue"
                         else m.target.value)
              for m, r in zip(metrics, readings, strict=True) if r.value is not None]
    return max(ratios) if ratios else None


def demand(metrics: tuple[MetricModel, ...], readings: tuple[MetricReading, ...],
           pods: int) -> float | None:
    """The replicas the load asks for, unrounded and unclamped: the highest of the metrics.

    Utilization and Value: reading ÷ target × the pods it was read on; AverageValue: the total ÷
    the target per replica. None when no metric has a reading.
    """
    needs = [r.value / m.target.value if m.target.type == "AverageValue"
             else r.value / m.target.value * pods
             for m, r in zip(metrics, readings, strict=True) if r.value is not None]
    return max(needs) if needs else None


def _measure(outcome: Outcome, series: Series, metrics: tuple[MetricModel, ...],
             spec: PolicySpec, timeline: _Timeline, options: Options) -> None:
    """Cost and fit, sample by sample of the recording, against the simulated replicas.

    A sample stands for the time to the next one, at most `max_gap`: the rest is unmeasured.
    """
    times = series.times
    n = len(times)
    columns = [(m.name, series.values[m.name], m.target.type, m.target.value,
                m.target.type == "Utilization" and series.replicas is not None)
               for m in metrics]
    made_with = series.replicas or []
    over = dict.fromkeys((m.name for m in metrics), 0.0)
    last_step = (times[-1] - times[-2]).total_seconds() if n > 1 else \
        options.interval.total_seconds()
    longest = options.max_gap.total_seconds()
    unmeasured = 0.0
    spec_at, ready_at = timeline.walker(), timeline.walker(ready=True)
    hours = at_max = 0.0
    gap, gap_at = 0, None
    top = spec.max_replicas
    for k in range(n):
        at = times[k]
        dt = (times[k + 1] - at).total_seconds() if k + 1 < n else last_step
        if dt > longest:
            unmeasured += dt - longest
            dt = longest
        replicas, ready = spec_at(at), ready_at(at)
        hours += replicas * dt
        if replicas >= top:
            at_max += dt
        needed = 0
        for name, values, kind, target, rescale in columns:
            value = values[k]
            if value is None:
                continue
            made = made_with[k] if rescale else None
            if made and ready:
                value = value * made / ready
            if kind == "AverageValue":
                if value / (ready or 1) > target:
                    over[name] += dt
                wanted = math.ceil(value / target)
            else:
                if value > target:
                    over[name] += dt
                wanted = math.ceil(value / target * ready)
            if wanted > needed:
                needed = wanted
        if needed - ready > gap:
            gap, gap_at = needed - ready, at
    outcome.replica_hours = hours / 3600
    outcome.seconds_at_max = at_max
    outcome.largest_gap, outcome.largest_gap_at = gap, gap_at
    outcome.seconds_over_target = over
    outcome.seconds_unmeasured = unmeasured


class _Timeline:
    """The decided replicas over time, and the ready pods they give after the ready delay."""

    def __init__(self, start: datetime, replicas: int, delay: timedelta) -> None:
        self._times = [start]
        self._values = [replicas]
        self._delay = delay

    def set(self, at: datetime, replicas: int) -> None:
        self._times.append(at)
        self._values.append(replicas)

    def walker(self, *, ready: bool = False) -> Callable[[datetime], int]:
        """`spec` (or `ready`) for times asked in increasing order, walking instead of searching."""
        times, values, delay = self._times, self._values, self._delay
        i = j = 0

        def value_at(at: datetime) -> int:
            nonlocal i, j
            while i + 1 < len(times) and times[i + 1] <= at:
                i += 1
            if not ready or not delay:
                return values[i]
            earlier = at - delay
            while j + 1 < len(times) and times[j + 1] <= earlier:
                j += 1
            return min(values[i], values[j])

        return value_at
