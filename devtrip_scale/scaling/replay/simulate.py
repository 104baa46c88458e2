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

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress, pairwise, repeat
from math import ceil, fsum
from operator import gt, mul, sub, truediv
from typing import NamedTuple, cast

from devtrip_scale.scaling import policy
from devtrip_scale.scaling.config import MetricModel, Settings
from devtrip_scale.scaling.models import (
    History,
    MetricReading,
    MetricType,
    Observation,
    PolicySpec,
)
from devtrip_scale.scaling.replay.recording import Recording, Series

LOOKBACK = timedelta(minutes=5)   # Prometheus's staleness: an older sample is no reading
_new = tuple.__new__              # a NamedTuple from a ready tuple (see policy._new)


@dataclass(frozen=True)
class Options:
    interval: timedelta
    ready_delay: timedelta = timedelta(0)
    start_replicas: int | None = None
    max_gap: timedelta = LOOKBACK


class Step(NamedTuple):
    """One decision of the replay (a NamedTuple: a month at 15 s makes 172,800 of them)."""

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
    """One Deployment's replay: a decision every `options.interval`, then the outcome measured.

    A step's readings, its load (the highest reading/target ratio as `check` sees it with these
    pods, 1.0 on target) and its demand (as `demand` computes it) are made in one pass over the
    metrics.
    """
    spec = spec_for(settings, name)
    metrics = settings.metrics
    times = series.times
    recorded = series.replicas
    first = options.start_replicas or (recorded[0] if recorded and recorded[0] else None)
    replicas = first or spec.min_replicas
    timeline = _Timeline(times[0], replicas, options.ready_delay)
    outcome = Outcome(name, max_replicas=spec.max_replicas)
    history = History()
    decide, remember, step = policy.decide, policy.remember, outcome.steps.append
    columns = [(m.name, m.target.type, m.target.value, series.values[m.name],
                m.target.type == "Utilization" and recorded is not None,
                m.target.type == "AverageValue") for m in metrics]
    stale = tuple(_new(MetricReading, (m.name, m.target.type, m.target.value, None,
                                       "no sample within 5 minutes", None)) for m in metrics)
    at, end, interval, i, n = times[0], times[-1], options.interval, 0, len(times)
    ups = downs = 0
    advance = 1   # samples per decision last time: right again for a regular recording
    while at <= end:
        if i + 1 < n and times[i + 1] <= at:   # the last sample at or before `at`
            j = i + advance
            if j < n and times[j] <= at and (j + 1 == n or times[j + 1] > at):
                i = j
            else:
                j = bisect_right(times, at, i + 1) - 1
                advance, i = j - i, j
        load = need = None
        if at - times[i] <= LOOKBACK:
            made = recorded[i] if recorded is not None else None
            built = []
            for metric, kind, target, column, rescale, total in columns:
                value = column[i]
                if value is not None:
                    if rescale and made and replicas:
                        value = value * made / replicas  # read on `made` pods, here on these
                    if total:
                        ratio = value / (target * (replicas or 1))
                        wants = value / target
                    else:
                        ratio = value / target
                        wants = ratio * replicas
                    if load is None or ratio > load:
                        load = ratio
                    if need is None or wants > need:
                        need = wants
                built.append(_new(MetricReading, (metric, kind, target, value, None, None)))
            readings = tuple(built)
        else:
            readings = stale
        decision = decide(_new(Observation, (name, replicas, readings, None, 0, None)), spec,
                          history, at)
        desired = decision[2]   # desired_replicas
        written = desired if desired != replicas else None
        history = remember(history, decision, spec, at, written=written)
        step(_new(Step, (at, replicas, desired, decision[3], decision[5], load, need)))
        if written is not None:
            if written > replicas:
                ups += 1
            else:
                downs += 1
            replicas = written
            timeline.set(at, replicas)
        at += interval
    outcome.scale_ups, outcome.scale_downs = ups, downs
    _measure(outcome, series, metrics, spec, timeline, options)
    return outcome


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
    """Cost and fit, sample by sample of the recording, against the simulated replicas; the gaps.

    A sample stands for the time to the next one, at most `max_gap`: the rest is unmeasured.
    The replicas and ready pods are constant between two changes of the timeline, so the
    samples are taken a stretch at a time, a metric's column at once, in C-level passes. What a
    sample needs rises with its reading, so a stretch's largest need is the need of its largest
    reading (the largest reading × replicas read on, for a rescaled Utilization), and only a
    stretch that sets a new largest gap is walked a sample at a time, to find where. A column
    with a hole (or a replica count missing where it is rescaled) is measured by `_fit`. Sums
    run in the order the sample-at-a-time measure takes, so the figures are the same to the bit;
    a stretch whose largest reading is not over target adds nothing, without a pass.
    """
    times = series.times
    n = len(times)
    longest = options.max_gap.total_seconds()
    spans = list(map(sub, times[1:], times))   # C all the way
    if spans and spans.count(spans[0]) == len(spans):   # a regular recording: one span
        dts = [spans[0].total_seconds()] * len(spans)
    else:
        dts = list(map(timedelta.total_seconds, spans))
    dts.append(dts[-1] if dts else options.interval.total_seconds())
    unmeasured = 0.0
    if max(dts) > longest:
        outcome.gaps = [(times[k], times[k + 1])
                        for k in compress(range(n - 1), map(gt, dts, repeat(longest)))]
        unmeasured = sum(dt - longest for dt in dts if dt > longest)
        dts = [longest if dt > longest else dt for dt in dts]
    made_with = series.replicas
    steady = made_with is not None and all(made_with)   # no count missing, none 0
    over = dict.fromkeys((m.name for m in metrics), 0.0)
    columns: list[_Column] = []
    for m in metrics:
        column, kind, target = series.values[m.name], m.target.type, m.target.value
        rescale = kind == "Utilization" and made_with is not None
        if (rescale and not steady) or _has_hole(column):
            columns.append(_new(_Column, (m.name, column, kind, target, rescale, None)))
        else:
            full = cast("list[float]", column)
            columns.append(_new(_Column, (m.name, column, kind, target, rescale, list(map(
                mul, full, cast("list[int]", made_with))) if rescale else full)))
    hours = at_max = 0.0
    gap, gap_at = 0, None
    top = spec.max_replicas
    for a, b, replicas, ready in timeline.stretches(times):
        span = dts[a:b]
        seconds = fsum(span) if len(span) > 1 else span[0]
        hours += replicas * seconds
        if replicas >= top:
            at_max += seconds
        most = 0
        for name, column, kind, target, rescale, flat in columns:
            if flat is None:   # a hole in the stretch's readings or replicas: as one piece
                made = made_with[a:b] if rescale and made_with is not None else None
                wanted, seconds_over = _fit(column[a:b], span, made, kind, target, ready)
                over[name] += seconds_over
                high = max(wanted)
            elif kind == "AverageValue":
                values = flat[a:b]
                top_value = max(values)
                if top_value / (ready or 1) > target:   # else no sample's share is over target
                    over[name] += sum(compress(span, map(gt, map(
                        truediv, values, repeat(ready or 1)), repeat(target))))
                high = ceil(top_value / target)
            elif rescale and ready:   # v × made / ready, the largest need of the largest v × made
                products = flat[a:b]
                top_value = max(products) / ready
                if top_value > target:
                    share = map(truediv, products, repeat(ready))
                    over[name] += sum(compress(span, map(gt, share, repeat(target))))
                high = ceil(top_value / target * ready)
            else:   # Value, Utilization as read (no replicas recorded, or no pod ready)
                values = cast("list[float]", column)[a:b] if rescale else flat[a:b]
                top_value = max(values)
                if top_value > target:
                    over[name] += sum(compress(span, map(gt, values, repeat(target))))
                high = ceil(top_value / target * ready)
            if high > most:
                most = high
        if columns and most - ready > gap:
            gap, gap_at = most - ready, times[a + _first_need(columns, made_with, a, b, span,
                                                                   ready).index(most)]
    outcome.replica_hours = hours / 3600
    outcome.seconds_at_max = at_max
    outcome.largest_gap, outcome.largest_gap_at = gap, gap_at
    outcome.seconds_over_target = over
    outcome.seconds_unmeasured = unmeasured


def _has_hole(column: list[float | None]) -> bool:
    """Whether a column of readings lacks one: a single C-level pass of `sum`, which a None
    stops, where `None in column` would compare every float with None the slow way."""
    try:
        sum(cast("list[float]", column))
    except TypeError:
        return True
    return False


class _Column(NamedTuple):
    """A metric's recorded column as `_measure` takes it: `flat` is None when it has a hole,
    else the readings (× the replicas read on, for a rescaled Utilization)."""

    name: str
    column: list[float | None]
    kind: MetricType
    target: float
    rescale: bool
    flat: list[float] | None


def _first_need(columns: list[_Column], made_with: list[int | None] | None, a: int, b: int,
                span: list[float], ready: int) -> list[int]:
    """Each sample's need over the stretch [a, b): the most replicas any metric asks for."""
    needed: list[int] | None = None
    for _, column, kind, target, rescale, _ in columns:
        made = made_with[a:b] if rescale and made_with is not None else None
        wanted, _ = _fit(column[a:b], span, made, kind, target, ready)
        needed = wanted if needed is None else list(map(max, needed, wanted))
    return needed or []


def _fit(values: list[float | None], dts: list[float], made: list[int | None] | None,
         kind: str, target: float, ready: int) -> tuple[list[int], float]:
    """One metric over a stretch of samples with `ready` pods: the replicas each sample needs
    (0 where there is no reading) and the seconds its reading was over target.

    Utilization is rescaled to the ready pods where the recording says on how many pods it was
    read; AverageValue is over target when its share per ready pod is."""
    if None in values or (made is not None and ready and not all(made)):
        return _fit_each(values, dts, made, kind, target, ready)
    readings = cast("list[float]", values)
    if made is not None and ready:
        readings = list(map(truediv, map(mul, readings, cast("list[int]", made)),
                            repeat(ready)))   # v × made / ready
    if kind == "AverageValue":
        share: Iterable[float] = map(truediv, readings, repeat(ready or 1))
        above: Iterable[bool] = map(gt, share, repeat(target))
        return list(map(ceil, map(truediv, readings, repeat(target)))), \
            sum(compress(dts, above))
    above = map(gt, readings, repeat(target))
    return list(map(ceil, map(mul, map(truediv, readings, repeat(target)), repeat(ready)))), \
        sum(compress(dts, above))


def _fit_each(values: list[float | None], dts: list[float], made: list[int | None] | None,
              kind: str, target: float, ready: int) -> tuple[list[int], float]:
    """`_fit` a sample at a time, for stretches with holes in the readings or the replicas."""
    wanted: list[int] = []
    seconds = 0.0
    for k, value in enumerate(values):
        if value is None:
            wanted.append(0)
            continue
        m = made[k] if made is not None else None
        if m and ready:
            value = value * m / ready
        if kind == "AverageValue":
            if value / (ready or 1) > target:
                seconds += dts[k]
            wanted.append(ceil(value / target))
        else:
            if value > target:
                seconds += dts[k]
            wanted.append(ceil(value / target * ready))
    return wanted, seconds


class _Timeline:
    """The decided replicas over time, and the ready pods they give after the ready delay."""

    def __init__(self, start: datetime, replicas: int, delay: timedelta) -> None:
        self._times = [start]
        self._values = [replicas]
        self._delay = delay

    def set(self, at: datetime, replicas: int) -> None:
        self._times.append(at)
        self._values.append(replicas)

    def stretches(self, times: list[datetime]) -> list[tuple[int, int, int, int]]:
        """(first, end, replicas, ready) for each run of samples over which neither changes:
        what `walker` and `walker(ready=True)` give for each of `times`, found by bisection."""
        starts = [0] + [bisect_left(times, at) for at in self._times[1:]]
        spec = [(i, v) for i, v in zip(starts, self._values, strict=True)]
        if self._delay:
            late = [0] + [bisect_left(times, at + self._delay) for at in self._times[1:]]
            delayed = [(i, v) for i, v in zip(late, self._values, strict=True)]
        else:
            delayed = spec
        cuts = sorted({i for i, _ in spec} | {i for i, _ in delayed} | {len(times)})
        out: list[tuple[int, int, int, int]] = []
        s = d = 0
        for a, b in pairwise(cuts):
            if a >= len(times):
                break
            while s + 1 < len(spec) and spec[s + 1][0] <= a:
                s += 1
            while d + 1 < len(delayed) and delayed[d + 1][0] <= a:
                d += 1
            replicas = spec[s][1]
            out.append((a, b, replicas, min(replicas, delayed[d][1])))
        return out

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
