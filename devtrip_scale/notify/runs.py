"""Runs that failed before a report existed, and their recovery, remembered off the cluster."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from devtrip_scale.core.errors import DevscaleError, ExitCode, LeaseHeld
from devtrip_scale.core.yamlfile import config_id
from devtrip_scale.notify import Notice, Notifier, NotifyState, fan_out, select

T = TypeVar("T")
LOCK_KEY = "failed:run:lock"
TITLES = {
    ExitCode.KUBERNETES: "devscale could not use the Kubernetes API",
    ExitCode.METRICS: "devscale could not read its metrics",
    ExitCode.CONFIG: "devscale's configuration is unusable",
}
ONE_WRITER = ("another runner checks this namespace (a devscale run loop, a CronJob, a crontab "
              "entry or a Jenkins job); keep one, or this one never scales")


@dataclass
class RunMemory:
    """One runner's memory: how many runs in a row found the lock held, and what was told."""

    locked_runs: int = 0
    told: NotifyState = field(default_factory=NotifyState)

    def encode(self) -> str:
        return json.dumps({"lockedRuns": self.locked_runs, "told": self.told.as_dict()},
                          separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> RunMemory:
        """Parse what `encode` wrote; raises ValueError on anything else."""
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
            return cls(int(data["lockedRuns"]), NotifyState.from_dict(data["told"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"unexpected layout: {e}") from None


def failure_notice(error: BaseException, locked_runs: int) -> Notice:
    """The notice for a run that ended in `error` before it had a report (pure)."""
    if isinstance(error, LeaseHeld):
        why = f"the Lease was held by {error.holder}" if error.holder else str(error)
        return Notice("failed", "warning", LOCK_KEY, "devscale runs kept out by the lock",
                      f"{locked_runs} runs in a row; the last: {why}; {ONE_WRITER}")
    if isinstance(error, DevscaleError):
        title = TITLES.get(error.exit_code, "devscale check failed")
        return Notice("failed", "critical", f"failed:run:{error.exit_code.name.lower()}", title,
                      str(error))
    return Notice("failed", "critical", "failed:run:internal", "devscale check crashed",
                  f"internal error {type(error).__name__}; run devscale check --debug for the "
                  "traceback")


def run_failed(memory: RunMemory, error: BaseException, now: datetime, quiet: timedelta,
               lock_runs: int) -> tuple[list[Notice], RunMemory]:
    """What a failed run tells, and the memory to keep (pure).

    The lock is told only when `lock_runs` runs in a row found it held; other failures at once.
    Either way the quiet period applies, as to the notices of a report. Conditions told before
    stay open: only a run that gets its report can say they are resolved.
    """
    locked = memory.locked_runs + 1 if isinstance(error, LeaseHeld) else 0
    if isinstance(error, LeaseHeld) and locked < lock_runs:
        return [], RunMemory(locked, memory.told)
    send, told = select([failure_notice(error, locked)],
                        NotifyState(memory.told.last_sent, {}), now, quiet)
    return send, RunMemory(locked, NotifyState(told.last_sent,
                                               {**memory.told.active, **told.active}))


def run_completed(memory: RunMemory, now: datetime, quiet: timedelta
                  ) -> tuple[list[Notice], RunMemory]:
    """A run that got its report resolves every run-level condition still open (pure)."""
    send, told = select([], memory.told, now, quiet)
    return send, RunMemory(0, told)


class MemoryStore(Protocol):
    def read(self) -> RunMemory: ...

    def update(self, change: Callable[[RunMemory], tuple[T, RunMemory]]) -> T: ...


class InProcessMemory:
    """For `devscale run`: the process itself outlives its passes."""

    def __init__(self) -> None:
        self.memory = RunMemory()

    def read(self) -> RunMemory:
        return self.memory

    def update(self, change: Callable[[RunMemory], tuple[T, RunMemory]]) -> T:
        result, self.memory = change(self.memory)
        return result


class MemoryFile:
    """For `devscale check`: a JSON file per config and namespace, locked while it changes.

    It lives on the runner, not in the cluster, because the cluster may be what failed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_runner(cls, namespace: str, config: Path,
                   env: Mapping[str, str] | None = None) -> MemoryFile:
        """`$DEVSCALE_STATE_DIR`, else `$XDG_STATE_HOME/devscale`, else ~/.local/state/devscale."""
        env = os.environ if env is None else env
        base = env.get("DEVSCALE_STATE_DIR") or str(
            Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devscale")
        return cls(Path(base) / f"runs-{namespace}-{config_id(config)}.json")

    def read(self) -> RunMemory:
        """The memory, or an empty one when there is no file yet or it is corrupt."""
        try:
            return RunMemory.decode(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return RunMemory()

    def update(self, change: Callable[[RunMemory], tuple[T, RunMemory]]) -> T:
        """Read, change and write back under an exclusive lock; raises OSError if unusable."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with open(fd, "r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                memory = RunMemory.decode(f.read())
            except ValueError:
                memory = RunMemory()
            result, new = change(memory)
            f.seek(0)
            f.truncate()
            f.write(new.encode())
        return result


@dataclass
class Told:
    """What a run-level notification did: the notices sent, channel failures, and problems."""

    sent: list[Notice] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    problem: str | None = None


class RunAlerts:
    """Tells a runner's run-level failures, and their recovery with the next report."""

    def __init__(self, store: MemoryStore, namespace: str, notifiers: Sequence[Notifier], *,
                 quiet: timedelta, lock_runs: int) -> None:
        self.store = store
        self.namespace = namespace
        self.notifiers = notifiers
        self.quiet = quiet
        self.lock_runs = lock_runs

    def recovered(self, now: datetime) -> list[Notice]:
        """The "resolved" notices a run that gets its report will send (reads only)."""
        try:
            return run_completed(self.store.read(), now, self.quiet)[0]
        except OSError:
            return []

    def completed(self, now: datetime) -> str | None:
        """Forget the conditions the report resolved; a problem with the memory, if any."""
        try:
            self.store.update(lambda m: run_completed(m, now, self.quiet))
        except OSError as e:
            return f"run memory not saved: {e}"
        return None

    def failed(self, error: BaseException, now: datetime) -> Told:
        """Remember the failure and tell it if it is due. Without a memory, nothing is told:
        every failing run would repeat it, and the quiet period could not hold."""
        try:
            send = self.store.update(
                lambda m: run_failed(m, error, now, self.quiet, self.lock_runs))
        except OSError as e:
            return Told(problem=f"not notified: no run memory ({e}); set DEVSCALE_STATE_DIR to "
                                "a writable directory that persists between runs")
        return Told(send, fan_out(self.namespace, send, self.notifiers))
