"""The protocols reconcile talks through: metrics in, replicas and history in and out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from devtrip_scale.scaling.models import History, Unschedulable


@dataclass(frozen=True)
class MetricQuery:
    """One metric to read for all targets at once: a PromQL query, or a JSON endpoint's field."""

    name: str
    promql: str = ""
    url: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class MetricResult:
    """One metric's readings: per Deployment, or one shared value; or why there are none.

    `unusable` readings are missing (NaN, ±Inf); `invalid` ones were there but make no sense
    (negative): both leave the Deployment without a reading, and `invalid` also fails the run's
    metrics, as a query error does. `pods` is, per Deployment, how many pods have samples behind
    its value, when the query says so (its series labelled `devscale_series="pods"`).
    """

    name: str
    values: Mapping[str, float] = field(default_factory=dict)
    shared: float | None = None
    error: str | None = None
    unusable: Mapping[str, str] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)
    pods: Mapping[str, int] = field(default_factory=dict)

    def reading_for(self, deployment: str) -> tuple[float | None, str | None]:
        """The value for one Deployment, or None with the reason it has none."""
        if self.error is not None:
            return None, self.error
        if deployment in self.values:
            return self.values[deployment], None
        if deployment in self.unusable:
            return None, self.unusable[deployment]
        if deployment in self.invalid:
            return None, self.invalid[deployment]
        if self.shared is not None:
            return self.shared, None
        return None, "no series for this Deployment (absent or stale)"


@dataclass(frozen=True)
class Workload:
    """A target Deployment as read from the API server."""

    name: str
    replicas: int
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    ready_replicas: int | None = None   # status.readyReplicas; None: not known (all ready)
    pods: int | None = None             # status.replicas: pods that exist, ready or not
    namespace: str = ""                 # set by a fleet pass's cluster-wide list


class MetricsSource(Protocol):
    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]: ...

    def close(self) -> None: ...


class ReplicaTarget(Protocol):
    def list(self, selector: str | None) -> list[Workload]: ...

    def get(self, name: str) -> Workload: ...

    def scale(self, name: str, replicas: int, resource_version: str) -> None: ...

    def other_scalers(self) -> dict[str, str]:
        """Deployment name → the HPA (or KEDA ScaledObject) that already scales it."""
        ...

    def unschedulable(self) -> dict[str, Unschedulable]:
        """Deployment name → its pods the scheduler cannot place (`of` left 0)."""
        ...


class FleetTarget(Protocol):
    """The Deployments of many namespaces: one cluster-wide list, writes per namespace."""

    def namespaces(self, selector: str | None) -> list[str]:
        """The names of the namespaces a label selector picks (None: all of them)."""
        ...

    def list_all(self, selector: str | None, page_size: int) -> list[Workload]:
        """Every Deployment of the cluster (with a label selector), page by page."""
        ...

    def in_namespace(self, namespace: str) -> ReplicaTarget:
        """One namespace's get and scale (what a write needs)."""
        ...

    def other_scalers(self) -> dict[tuple[str, str], str]:
        """(namespace, Deployment) → the HPA that already scales it, from one list."""
        ...

    def unschedulable(self) -> dict[tuple[str, str], Unschedulable]:
        """(namespace, Deployment) → its pods the scheduler cannot place, from one list."""
        ...


class EventSink(Protocol):
    def record(self, workload: Workload, type_: Literal["Normal", "Warning"], reason: str,
               message: str) -> None: ...


class HistoryStore(Protocol):
    """Per-Deployment history keyed by the Deployment's UID, plus one opaque `notes` text (the
    notification state). `save` takes each history with the Deployment's name, for people, and
    the keys of Deployments that are gone."""

    notes: str | None

    def load(self) -> tuple[dict[str, History], list[str]]: ...

    def save(self, histories: Mapping[str, tuple[History, str]], notes: str | None = None,
             remove: Sequence[str] = ()) -> None: ...
