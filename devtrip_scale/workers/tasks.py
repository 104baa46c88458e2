"""The rules of a task of N worker pods (pure): what its pods are called, how each one ended,
whether it runs again, how many may run at once, and what the task came to.

Pod names are a function of (task, index, attempt): a redelivered request asks for the same
names again, and the API server's 409 AlreadyExists makes the second create a no-op.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_NAME = 63          # a pod name becomes the hostname: one DNS label
KEY_LIMIT = 40         # the task part of a name, so that index and attempt always fit
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def task_key(task_id: str) -> str:
    """A DNS-1123 label of at most 40 characters for a task id, stable and collision-safe.

    An id that already is such a label is kept as it is; anything else (upper case, '_', ':',
    too long) becomes a readable slug plus 8 hex digits of its SHA-256.
    """
    if len(task_id) <= KEY_LIMIT and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", task_id):
        return task_id
    slug = _NOT_DNS.sub("-", task_id.lower()).strip("-")[: KEY_LIMIT - 9].strip("-")
    return f"{slug}-{_digest(task_id)}" if slug else f"t{_digest(task_id)}"


def pod_name(task_id: str, index: int, attempt: int) -> str:
    """`w-<task>-<index>-<attempt>`: DNS-1123, ≤63 characters, deterministic."""
    name = f"w-{task_key(task_id)}-{index}-{attempt}"
    if len(name) > MAX_NAME:   # only with absurd index/attempt numbers
        name = f"w-{_digest(name, 16)}-{index}-{attempt}"[-MAX_NAME:].lstrip("-")
    return name


def label_value(text: str) -> str:
    """A Kubernetes label value from any text: ≤63 of [A-Za-z0-9_.-], alphanumeric at both ends;
    long or mangled values keep a hash suffix so that distinct inputs stay distinct."""
    clean = _NOT_LABEL.sub("-", text)
    if clean == text and len(text) <= MAX_NAME and re.fullmatch(
            r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", text):
        return text
    trimmed = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", clean[:MAX_NAME - 9])
    return f"{trimmed}-{_digest(text)}" if trimmed else _digest(text)


class Outcome(StrEnum):
    """How one worker pod ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"          # the container exited non-zero, or ran past its deadline
    EVICTED = "evicted"        # the node pressed it out: not the task's fault
    LOST = "lost"              # deleted or its node vanished before it ended
    CANCELLED = "cancelled"    # scale_down


def classify(pod: Mapping[str, Any], deleted: bool = False) -> Outcome | None:
    """The outcome of a pod as the API server reports it, or None while it still runs."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return Outcome.SUCCEEDED
    if phase == "Failed":
        reason = status.get("reason") or ""
        if reason in ("Evicted", "Preempting", "NodeLost", "Terminated", "NodeShutdown",
                      "UnexpectedAdmissionError"):
            return Outcome.EVICTED
        return Outcome.FAILED
    return Outcome.LOST if deleted else None


def exit_code(pod: Mapping[str, Any]) -> int | None:
    """The first terminated container's exit code, if any."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated is not None and "exitCode" in terminated:
            return int(terminated["exitCode"])
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` failed attempts may be retried; evictions and lost pods get a new attempt
    without using a retry, up to `max_disruptions` of them."""

    max_retries: int = 2
    max_disruptions: int = 5

    def next(self, outcome: Outcome, failures: int, disruptions: int) -> Retry | None:
        """The retry after an attempt ended in `outcome` (with the counts before it), or None
        when the index is done."""
        if outcome is Outcome.FAILED and failures < self.max_retries:
            return Retry(failures + 1, disruptions)
        if outcome in (Outcome.EVICTED, Outcome.LOST) and disruptions < self.max_disruptions:
            return Retry(failures, disruptions + 1)
        return None


@dataclass(frozen=True)
class Retry:
    failures: int
    disruptions: int


@dataclass
class Capacity:
    """The cap on concurrent workers: a slot per live pod, FIFO admission of whole requests.

    Live pods are those the watch reports not yet ended, plus those admitted and not yet seen.
    A request waits in `queue` until all its pods fit; one larger than the cap is admitted when
    nothing else runs (the request parser keeps it at most the cap anyway).
    """

    limit: int
    live: set[str] = field(default_factory=set)
    queue: deque[tuple[str, tuple[str, ...]]] = field(default_factory=deque)

    def request(self, ticket: str, names: Iterable[str]) -> bool:
        """Queue `ticket` for `names`; True if it is admitted at once."""
        self.queue.append((ticket, tuple(n for n in names if n not in self.live)))
        return ticket in self.admit()

    def admit(self) -> list[str]:
        """Admit queued tickets in order while they fit; the tickets admitted."""
        admitted = []
        while self.queue:
            ticket, names = self.queue[0]
            if self.live and len(self.live) + len(names) > self.limit:
                break
            self.queue.popleft()
            self.live.update(names)
            admitted.append(ticket)
        return admitted

    def withdraw(self, ticket: str) -> None:
        self.queue = deque(q for q in self.queue if q[0] != ticket)

    def hold(self, name: str) -> None:
        """A pod seen live (or a retry replacing an ended one) holds a slot."""
        self.live.add(name)

    def release(self, names: Iterable[str]) -> list[str]:
        """Pods that ended or were never created free their slots; the tickets admitted now."""
        self.live.difference_update(names)
        return self.admit()

    @property
    def waiting(self) -> int:
        return sum(len(n) for _, n in self.queue)


@dataclass(frozen=True)
class PodResult:
    """One index of a task, as it ended (its last attempt)."""

    index: int
    outcome: Outcome
    attempts: int
    exit_code: int | None = None
    seconds: float | None = None
    pod: str = ""

    def encode(self) -> dict[str, Any]:
        return {"index": self.index, "outcome": self.outcome.value, "attempts": self.attempts,
                "exitCode": self.exit_code, "seconds": self.seconds, "pod": self.pod}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> PodResult:
        return cls(int(data["index"]), Outcome(data["outcome"]), int(data["attempts"]),
                   data.get("exitCode"), data.get("seconds"), str(data.get("pod", "")))


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    outcome: str                 # succeeded | failed | cancelled
    pods: tuple[PodResult, ...]
    seconds: float | None

    @property
    def succeeded(self) -> int:
        return sum(p.outcome is Outcome.SUCCEEDED for p in self.pods)

    @property
    def failed(self) -> int:
        return sum(p.outcome in (Outcome.FAILED, Outcome.EVICTED, Outcome.LOST)
                   for p in self.pods)

    def summary(self) -> str:
        codes = sorted({p.exit_code for p in self.pods if p.exit_code not in (None, 0)},
                       key=lambda c: c or 0)
        text = (f"task {self.task_id}: {self.outcome}, {self.succeeded} of {len(self.pods)} "
                f"pods succeeded")
        if self.failed:
            text += f", {self.failed} failed"
            if codes:
                text += f" (exit codes {', '.join(map(str, codes))})"
        retried = sum(p.attempts - 1 for p in self.pods)
        if retried:
            text += f", {retried} retries"
        if self.seconds is not None:
            text += f", {self.seconds:.1f}s"
        return text


def summarise(task_id: str, pods: Iterable[PodResult], cancelled: bool,
              seconds: float | None) -> TaskResult:
    """A task's result from its indices' results (pure)."""
    ordered = tuple(sorted(pods, key=lambda p: p.index))
    if cancelled or any(p.outcome is Outcome.CANCELLED for p in ordered):
        outcome = "cancelled"
    elif all(p.outcome is Outcome.SUCCEEDED for p in ordered):
        outcome = "succeeded"
    else:
        outcome = "failed"
    return TaskResult(task_id, outcome, ordered, seconds)
