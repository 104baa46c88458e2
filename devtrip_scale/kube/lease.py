"""LeaseLock: the per-namespace coordination.k8s.io/v1 Lease that keeps two runners from scaling."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeNotFound, LeaseHeld
from devtrip_scale.core.trace import Trace
from devtrip_scale.kube import FIELD_MANAGER, TIMEOUT, request

LEASE_NAME = "devscale-lock"
SKEW_SECONDS = 5


def micro_time(at: datetime) -> str:
    """A MicroTime the API server accepts: six fractional digits and a zone, always."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseLock:
    """Create or take over the Lease; refuse while another holder's lease is live.

    Expiry is judged by the holder's own `leaseDurationSeconds` plus a skew margin. Every write
    carries the resourceVersion read, so two runners racing for an expired lease cannot both win.
    """

    def __init__(self, api_client: Any, namespace: str, *, identity: str | None = None,
                 duration_seconds: int = 60, name: str = LEASE_NAME,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 trace: Trace | None = None) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity or new_identity()
        self.duration = duration_seconds
        self._clock = clock
        self._trace = trace or Trace()
        self._resource_version: str | None = None
        self._transitions = 0
        self._acquired_at: datetime | None = None
        self._renewed_at = datetime.min.replace(tzinfo=UTC)
        self._attempted = False

    @property
    def held(self) -> bool:
        return self._resource_version is not None

    def acquire(self) -> None:
        """Take the lease or raise LeaseHeld naming the live holder."""
        now = self._clock()
        self._attempted = True
        try:
            lease = self._call("get", lambda: self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=TIMEOUT))
        except KubeNotFound:
            try:
                self._write("create", now, now, transitions=0, resource_version=None)
            except KubeConflict:
                raise self._taken("created it at the same moment") from None
            return
        spec = lease.spec
        holder = spec.holder_identity
        if holder and holder != self.identity:
            renewed = spec.renew_time or spec.acquire_time
            duration = spec.lease_duration_seconds or self.duration
            if renewed is not None:
                expires = renewed + timedelta(seconds=duration + SKEW_SECONDS)
                if expires > now:
                    since = spec.acquire_time.isoformat() if spec.acquire_time else "unknown"
                    raise LeaseHeld(
                        f"another devscale run holds Lease {self.namespace}/{self.name}: "
                        f"{holder}, since {since}, live until {expires.isoformat()}; "
                        "skipping this run (it changes nothing)",
                        holder=f"{holder}, since {since}")
        transitions = (spec.lease_transitions or 0) + (1 if holder != self.identity else 0)
        acquired = now if holder != self.identity else (spec.acquire_time or now)
        try:
            self._write("update", acquired, now, transitions=transitions,
                        resource_version=lease.metadata.resource_version)
        except KubeConflict:
            raise self._taken("took it at the same moment") from None

    def _taken(self, how: str) -> LeaseHeld:
        """LeaseHeld naming whoever holds the Lease now, read back after losing a race."""
        try:
            spec = self._call("get", lambda: self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=TIMEOUT)).spec
            since = spec.acquire_time.isoformat() if spec.acquire_time else "unknown"
            holder = f"{spec.holder_identity or 'nobody'}, since {since}"
        except KubeError as e:
            holder = f"holder unknown: reading the Lease back failed ({e})"
        return LeaseHeld(f"another devscale run {how}: Lease {self.namespace}/{self.name} is "
                         f"held by {holder}; skipping this run (it changes nothing)",
                         holder=holder)

    def renew(self) -> None:
        """Extend the lease; raises LeaseHeld if someone else took it meanwhile."""
        if self._acquired_at is None:
            raise LeaseHeld("the lease is not held")
        try:
            self._write("update", self._acquired_at, self._clock(),
                        transitions=self._transitions, resource_version=self._resource_version)
        except KubeConflict:
            self._resource_version = None
            raise self._taken("took it over") from None

    @contextlib.contextmanager
    def kept(self) -> Iterator[Callable[[], str | None]]:
        """Renew the held lease every third of its duration while the body runs.

        Yields a guard to call before each write: None while the lease is surely ours, else why
        writing must stop (taken over, or not renewed for so long that another runner may
        take it over).
        """
        stop = threading.Event()
        problem: list[str] = []

        def renew_until_stopped() -> None:
            while not stop.wait(self.duration / 3):
                try:
                    self.renew()
                    problem.clear()
                except LeaseHeld as e:
                    problem[:] = [str(e)]
                    return
                except KubeError as e:   # the guard judges by the time since the last renewal
                    problem[:] = [f"renewing it failed: {e}"]

        def guard() -> str | None:
            if self._resource_version is None:
                return f"lost the Lease mid-pass: {problem[0] if problem else 'released'}"
            # Two thirds: one renewal may fail, and a third of the duration is left for the
            # write itself (20 s of a 60 s lease: more than an API call's read timeout).
            left = self._renewed_at + timedelta(seconds=self.duration * 2 / 3)
            if self._clock() >= left:
                return (f"Lease {self.namespace}/{self.name} not renewed since "
                        f"{self._renewed_at.isoformat()} ({problem[0] if problem else 'no answer'}"
                        "): stopping before another runner may take it over")
            return None

        renewer = threading.Thread(target=renew_until_stopped, daemon=True,
                                   name="devscale-lease-renewal")
        renewer.start()
        try:
            yield guard
        finally:
            stop.set()
            renewer.join(TIMEOUT[0] + TIMEOUT[1])

    def release(self) -> None:
        """Give the lease up (holder cleared) so the next run need not wait for expiry.

        It reads the lease back rather than trusting what it knows: an interrupt can land after
        the API server stored our write but before we saw its answer.
        """
        if not self._attempted:
            return
        # Taken over, gone or unreachable: either way not ours to clear; it expires by itself.
        with contextlib.suppress(KubeError):
            lease = self._call("get", lambda: self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=TIMEOUT))
            if lease.spec.holder_identity != self.identity:
                return
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": {"leaseDurationSeconds": lease.spec.lease_duration_seconds,
                         "leaseTransitions": lease.spec.lease_transitions or 0},
            }
            self._call("update", lambda: self._api.replace_namespaced_lease(
                self.name, self.namespace, body, field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT))
        self._resource_version = None
        self._attempted = False

    def _write(self, verb: str, acquired: datetime, renewed: datetime, *, transitions: int,
               resource_version: str | None) -> None:
        metadata: dict[str, Any] = {"name": self.name,
                                    "labels": {"app.kubernetes.io/managed-by": "devscale"}}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                     "acquireTime": micro_time(acquired), "renewTime": micro_time(renewed),
                     "leaseTransitions": transitions},
        }
        if verb == "create":
            result = self._call("create", lambda: self._api.create_namespaced_lease(
                self.namespace, body, field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT))
        else:
            result = self._call("update", lambda: self._api.replace_namespaced_lease(
                self.name, self.namespace, body, field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT))
        self._resource_version = result.metadata.resource_version
        self._transitions = transitions
        self._acquired_at = acquired
        self._renewed_at = renewed

    def _call(self, verb: str, call: Callable[[], Any]) -> Any:
        return request(self._trace, verb, "leases", self.namespace, self.name, call)
