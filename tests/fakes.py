"""In-memory stand-ins for the ports, for reconcile and CLI tests that need no servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devtrip_scale.core.errors import KubeConflict, KubeError, NotifyError
from devtrip_scale.notify import KINDS, Kind, Notice
from devtrip_scale.scaling.models import History, Unschedulable
from devtrip_scale.scaling.ports import MetricQuery, MetricResult, Workload


@dataclass
class StaticSource:
    results: dict[str, MetricResult]
    queries: list[MetricQuery] = field(default_factory=list)

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        self.queries.extend(queries)
        return [self.results.get(q.name, MetricResult(q.name, error="no data")) for q in queries]

    def close(self) -> None:
        pass


@dataclass
class FakeDeployments:
    replicas: dict[str, int]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    conflicts: int = 0
    fail: dict[str, KubeError] = field(default_factory=dict)
    writes: list[tuple[str, int, str]] = field(default_factory=list)
    version: int = 1
    scalers: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)   # absent: every replica ready
    uids: dict[str, str] = field(default_factory=dict)    # absent: uid-NAME
    stuck: dict[str, Unschedulable] = field(default_factory=dict)

    def _workload(self, name: str) -> Workload:
        replicas = self.replicas[name]
        return Workload(name, replicas, str(self.version), self.labels.get(name, {}),
                        self.annotations.get(name, {}), uid=self.uids.get(name, f"uid-{name}"),
                        ready_replicas=self.ready.get(name, replicas), pods=replicas)

    def list(self, selector: str | None) -> list[Workload]:
        names = sorted(self.replicas)
        if selector:
            key, _, value = selector.partition("=")
            names = [n for n in names if self.labels.get(n, {}).get(key) == value]
        return [self._workload(n) for n in names]

    def get(self, name: str) -> Workload:
        return self._workload(name)

    def other_scalers(self) -> dict[str, str]:
        return dict(self.scalers)

    def unschedulable(self) -> dict[str, Unschedulable]:
        return dict(self.stuck)

    def scale(self, name: str, replicas: int, resource_version: str) -> None:
        self.writes.append((name, replicas, resource_version))
        if name in self.fail:
            raise self.fail[name]
        if self.conflicts:
            self.conflicts -= 1
            self.version += 1
            raise KubeConflict("the object has been modified")
        self.replicas[name] = replicas
        self.version += 1


@dataclass
class MemoryHistory:
    stored: dict[str, History] = field(default_factory=dict)
    saves: int = 0
    notes: str | None = None
    fail: KubeError | None = None

    def load(self) -> tuple[dict[str, History], list[str]]:
        return dict(self.stored), []

    def save(self, histories: Mapping[str, tuple[History, str]], notes: str | None = None,
             remove: Sequence[str] = ()) -> None:
        self.saves += 1
        if self.fail is not None:
            raise self.fail
        self.stored.update({uid: h for uid, (h, _) in histories.items()})
        for key in remove:
            self.stored.pop(key, None)
        if notes is not None:
            self.notes = notes


@dataclass
class RecordingNotifier:
    """A channel that keeps each message (a list of notices) it is sent, or fails them all."""

    name: str = "recording"
    kinds: frozenset[Kind] = frozenset(KINDS)
    fail: str | None = None
    messages: list[list[Notice]] = field(default_factory=list)

    def send(self, namespace: str, notices: Sequence[Notice]) -> None:
        self.messages.append(list(notices))
        if self.fail is not None:
            raise NotifyError(self.fail)


@dataclass
class FakeCluster:
    """Deployments of many namespaces, keyed `namespace/name`, for fleet passes."""

    replicas: dict[str, int]
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    scalers: dict[tuple[str, str], str] = field(default_factory=dict)
    writes: list[tuple[str, int]] = field(default_factory=list)
    lists: int = 0

    def _workload(self, where: str) -> Workload:
        ns, name = where.split("/")
        n = self.replicas[where]
        return Workload(name, n, "1", {}, self.annotations.get(where, {}), uid=f"uid-{where}",
                        ready_replicas=n, pods=n, namespace=ns)

    def namespaces(self, selector: str | None) -> list[str]:
        everything = sorted({k.split("/")[0] for k in self.replicas} | set(self.namespace_labels))
        if not selector:
            return everything
        label, _, value = selector.partition("=")
        return [ns for ns in everything if self.namespace_labels.get(ns, {}).get(label) == value]

    def list_all(self, selector: str | None, page_size: int) -> list[Workload]:
        self.lists += 1
        return [self._workload(k) for k in sorted(self.replicas)]

    def in_namespace(self, namespace: str) -> _NamespaceOf:
        return _NamespaceOf(self, namespace)

    def other_scalers(self) -> dict[tuple[str, str], str]:
        return dict(self.scalers)

    def unschedulable(self) -> dict[tuple[str, str], Unschedulable]:
        return {}


@dataclass
class _NamespaceOf:
    cluster: FakeCluster
    namespace: str

    def list(self, selector: str | None) -> list[Workload]:
        return [w for w in self.cluster.list_all(selector, 0) if w.namespace == self.namespace]

    def get(self, name: str) -> Workload:
        return self.cluster._workload(f"{self.namespace}/{name}")

    def scale(self, name: str, replicas: int, resource_version: str) -> None:
        self.cluster.writes.append((f"{self.namespace}/{name}", replicas))
        self.cluster.replicas[f"{self.namespace}/{name}"] = replicas

    def other_scalers(self) -> dict[str, str]:
        return {}

    def unschedulable(self) -> dict[str, Unschedulable]:
        return {}


@dataclass
class RecordingEvents:
    recorded: list[tuple[str, str, str, str]] = field(default_factory=list)

    def record(self, workload: Workload, type_: str, reason: str, message: str) -> None:
        self.recorded.append((f"{workload.namespace}/{workload.name}", type_, reason, message))
