"""The crontab entry: schedule validation, the `flock`-wrapped line, idempotent install/remove."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from devtrip_scale.config import config_id
from devtrip_scale.errors import ConfigError

# (name, lowest, highest) of the five fields
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
_ITEM = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def validate_schedule(schedule: str) -> str:
    """A five-field numeric cron schedule, or a ConfigError naming the bad field."""
    parts = schedule.split()
    if len(parts) != 5:
        raise ConfigError(f"schedule {schedule!r} must have 5 fields (minute hour day-of-month "
                          f"month day-of-week), it has {len(parts)}")
    for part, (name, low, high) in zip(parts, FIELDS, strict=True):
        for item in part.split(","):
            match = _ITEM.match(item)
            if not match:
                raise ConfigError(f"schedule {schedule!r}: {name} {item!r} is not *, N, N-M "
                                  "or a step like */5")
            base, step = match.groups()
            numbers = [] if base == "*" else [int(n) for n in base.split("-")]
            if any(not low <= n <= high for n in numbers) or (
                    len(numbers) == 2 and numbers[0] > numbers[1]):
                raise ConfigError(f"schedule {schedule!r}: {name} {item!r} is outside "
                                  f"{low}-{high}")
            if step is not None and not 1 <= int(step) <= high:
                raise ConfigError(f"schedule {schedule!r}: {name} step {step} is out of range")
    return schedule


def every_to_schedule(every: str) -> str:
    """`2m` → `*/2 * * * *`, `1h` → `0 * * * *`; what cron can repeat evenly."""
    match = re.fullmatch(r"(\d+)([mh])", every.strip())
    if not match:
        raise ConfigError(f"--every {every!r}: give minutes or hours, like 2m or 1h")
    n, unit = int(match.group(1)), match.group(2)
    if unit == "m" and 1 <= n <= 59 and 60 % n == 0:
        return "* * * * *" if n == 1 else f"*/{n} * * * *"
    if unit == "h" and 1 <= n <= 23 and 24 % n == 0:
        return "0 * * * *" if n == 1 else f"0 */{n} * * *"
    raise ConfigError(f"--every {every!r}: cron repeats evenly only every 1-30 minutes that "
                      "divide an hour, or 1-12 hours that divide a day; use --schedule")


def marker(config: Path) -> str:
    """The tag that identifies the entry of one config file."""
    return "devscale:" + config_id(config)


def entry(schedule: str, config: Path, log: Path) -> str:
    """The crontab line: never two checks at once (flock -n), output appended to `log`."""
    flock = shutil.which("flock") or "flock"
    config = config.resolve()
    tag = marker(config)
    lock = Path("/tmp") / f"{tag.replace(':', '-')}.lock"
    command = [flock, "-n", str(lock), sys.executable, "-m", "devtrip_scale", "check",
               "--config", str(config)]
    return (f"{validate_schedule(schedule)} {shlex.join(command)} "
            f">> {shlex.quote(str(log))} 2>&1  # {tag}")


def read_crontab(user: str | None = None) -> list[str]:
    proc = subprocess.run([_crontab(), *(["-u", user] if user else []), "-l"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return []
        raise ConfigError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout.splitlines()


def write_crontab(lines: list[str], user: str | None = None) -> None:
    text = "".join(f"{line}\n" for line in lines)
    proc = subprocess.run([_crontab(), *(["-u", user] if user else []), "-"], input=text,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"crontab refused the new table: {proc.stderr.strip()}")


def install(line: str, config: Path, user: str | None = None) -> bool:
    """Put `line` in the crontab in place of any entry for the same config; True if changed."""
    tag = marker(config)
    current = read_crontab(user)
    kept = [existing for existing in current if not existing.endswith(f"# {tag}")]
    new = [*kept, line]
    if new != current:
        write_crontab(new, user)
        return True
    return False


def uninstall(config: Path | None, user: str | None = None) -> int:
    """Remove the entry of one config (or every devscale entry); returns how many went."""
    needle = f"# {marker(config)}" if config is not None else "# devscale:"
    current = read_crontab(user)
    kept = [line for line in current if needle not in line]
    if len(kept) != len(current):
        write_crontab(kept, user)
    return len(current) - len(kept)


def entries(user: str | None = None) -> list[str]:
    return [line for line in read_crontab(user) if "# devscale:" in line]


def _crontab() -> str:
    path = shutil.which("crontab")
    if path is None:
        raise ConfigError("crontab is not installed (Debian: apt-get install cron)")
    return path
