"""Frozen values of the load-based wing: policy spec, readings, history and decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Literal, NamedTuple

MetricType = Literal["Utilization", "Value", "AverageValue"]
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
Action = Literal["scale_up", "scale_down", "none", "hold"]
Reason = Literal[
    "ScalingDisabled",
    "TooManyReplicas",
    "TooFewReplicas",
    "NoMetrics",
    "MissingMetrics",
    "ScaleUpStabilized",
    "ScaleDownStabilized",
    "ScaleUpCooldown",
    "ScaleDownCooldown",
    "ScaleUpLimit",
    "ScaleDownLimit",
    "WithinTolerance",
    "DesiredWithinRange",
    "ScaleUpUnschedulable",
]

HOLD_REASONS: tuple[Reason, ...] = ("MissingMetrics", "NoMetrics")


@dataclass(frozen=True)
class ScalingPolicy:
    """One HPA rate policy: at most `value` pods (or percent) per `period_seconds`."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """The HPA's `scaleUp` or `scaleDown` block, defaults already applied."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]
    tolerance: float | None = None

    @property
    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


HPA_DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)),
)
HPA_DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclass(frozen=True)
class PolicySpec:
    """Everything the policy needs to know about one target's limits and behaviour."""

    min_replicas: int
    max_replicas: int
    tolerance: float = 0.1
    scale_up: ScalingRules = HPA_DEFAULT_SCALE_UP
    scale_down: ScalingRules = HPA_DEFAULT_SCALE_DOWN
    scale_up_cooldown_seconds: int = 0
    scale_down_cooldown_seconds: int = 0

    @property
    def memory_seconds(self) -> int:
        """How far back the history must reach for every window, period and cooldown."""
        return max(
            self.scale_up.stabilization_window_seconds,
            self.scale_down.stabilization_window_seconds,
            self.scale_up.longest_period,
            self.scale_down.longest_period,
            self.scale_up_cooldown_seconds,
            self.scale_down_cooldown_seconds,
        )

    @cached_property
    def timing(self) -> SpecTiming:
        """The values every decision derives from the spec, derived once per spec."""
        up, down = self.scale_up, self.scale_down
        return SpecTiming(
            self.tolerance if up.tolerance is None else up.tolerance,
            self.tolerance if down.tolerance is None else down.tolerance,
            timedelta(seconds=up.stabilization_window_seconds),
            timedelta(seconds=down.stabilization_window_seconds),
            timedelta(seconds=self.memory_seconds),
            timedelta(seconds=self.scale_up_cooldown_seconds),
            timedelta(seconds=self.scale_down_cooldown_seconds),
        )


class SpecTiming(NamedTuple):
    """A PolicySpec's tolerances and windows as the policy uses them (see `PolicySpec.timing`)."""

    up_tolerance: float
    down_tolerance: float
    up_window: timedelta
    down_window: timedelta
    memory: timedelta
    up_cooldown: timedelta
    down_cooldown: timedelta


class MetricReading(NamedTuple):
    """One metric's reading for one Deployment; `value` None means no usable reading.

    `pods` is how many pods have samples behind the value (the query's `count` series), None
    when the query does not say. Ready pods beyond it are the HPA's missing pods.

    The per-step values are NamedTuples: immutable like the frozen dataclasses, and several
    times cheaper to build, which a 172,800-step replay notices.
    """

    name: str
    type: MetricType
    target: float
    value: float | None
    error: str | None = None
    pods: int | None = None


@dataclass(frozen=True)
class Unschedulable:
    """A Deployment's pods the scheduler cannot place: how many, since when, and why."""

    pods: int
    of: int                 # the Deployment's pods in all
    since: datetime         # the earliest PodScheduled=False transition among them
    why: str                # the scheduler's message, e.g. "0/3 nodes are available: …"

    def text(self, now: datetime) -> str:
        """`capacity: 3 of 8 pods unschedulable for 6 min: 0/3 nodes are available: …`."""
        minutes = max(0, int((now - self.since).total_seconds() // 60))
        return (f"capacity: {self.pods} of {self.of} pods unschedulable for {minutes} min: "
                f"{self.why}")


class Observation(NamedTuple):
    """What a run saw of one Deployment: its replicas, its pods' readiness and its readings.

    `current_replicas` is `spec.replicas` (the scale subresource). `ready_pods` is
    `status.readyReplicas`, the count the HPA multiplies Utilization and Value ratios by; None
    means every current replica is ready (a replay that does not model readiness).
    `unready_pods` are pods that exist but are not ready (`status.replicas - readyReplicas`).
    """

    deployment: str
    current_replicas: int
    readings: tuple[MetricReading, ...]
    ready_pods: int | None = None
    unready_pods: int = 0
    unschedulable: Unschedulable | None = None


class Recommendation(NamedTuple):
    """An un-limited recommendation made at `at`, kept for stabilisation windows."""

    at: datetime
    replicas: int


class ScaleEvent(NamedTuple):
    """A replica change devscale made at `at`, kept for rate policies and cooldowns."""

    at: datetime
    from_replicas: int
    to_replicas: int


class History(NamedTuple):
    """What earlier runs left for one Deployment (a NamedTuple, as the other per-step values:
    a replay builds one per step)."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    last_written: int | None = None


class Proposal(NamedTuple):
    """One metric's proposal: its reading against its target and the replicas it asks for."""

    name: str
    type: MetricType
    target: float
    reading: float | None
    replicas: int | None
    within_tolerance: bool = False
    error: str | None = None


class Decision(NamedTuple):
    """The policy's verdict for one Deployment, with the rule that shaped it."""

    deployment: str
    current_replicas: int
    desired_replicas: int
    recommendation: int | None
    action: Action
    reason: Reason
    message: str
    proposals: tuple[Proposal, ...] = ()
    deciding_metric: str | None = None
    held_until: datetime | None = None
    limits: tuple[str, ...] = ()
    ready_pods: int | None = None

    @property
    def capacity_exhausted(self) -> bool:
        """A metric asks for more than maxReplicas allows."""
        return self.reason == "TooManyReplicas" and (self.recommendation or 0) > \
            self.desired_replicas

    @property
    def held(self) -> bool:
        """Replicas held because metrics are missing."""
        return self.reason in HOLD_REASONS

    def why(self) -> str:
        """The deciding metric against its target, e.g. `cpu 140 against a target of 70`."""
        deciding = next((p for p in self.proposals if p.name == self.deciding_metric), None)
        if deciding is None or deciding.reading is None:
            return ""
        return f"{deciding.name} {deciding.reading:g} against a target of {deciding.target:g}"
