"""The crontab entry: schedule validation, the `flock`-wrapped line, idempotent install/remove.

The entry pins its target — the kubeconfig file (absolute), its context and the namespace in
effect at install time — so that a later `kubectl config use-context` or a changed $KUBECONFIG
does not move the cron job to another cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.core.yamlfile import config_id

# What Debian's cron (Vixie cron 3.0pl1) takes, as `crontab -n` checks it; `@`-descriptors are
# case-sensitive, month and day-of-week names case-insensitive.
DESCRIPTORS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
               "@hourly")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names from `lowest` on) of the five fields; 0 and 7 are Sunday
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS), ("day of week", 0, 7, DAYS))
_ITEM = re.compile(r"^(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/(.*))?$")
_FORMS = "*, N, N-M, a step of * or of a range (*/5, 8-18/2) or a list of these"


def validate_schedule(schedule: str, *, kubernetes: bool = False) -> str:
    """A cron schedule as crond takes it, or a ConfigError naming the bad field and why.

    Five fields (minute, hour, day of month, month, day of week) of `*`, numbers, ranges,
    steps of `*` or of a range, and lists; month and day-of-week names (`jan`, `mon-fri`);
    0 or 7 for Sunday; or one of DESCRIPTORS. Stricter than crond only where crond would
    quietly never run or run once (a range backwards, a step past the field's range).
    `kubernetes=True` checks a CronJob's schedule instead: no @reboot, Sunday only as 0.
    """
    text = schedule.strip()
    if text.startswith("@"):
        if text not in DESCRIPTORS or (kubernetes and text == "@reboot"):
            known = [d for d in DESCRIPTORS if not (kubernetes and d == "@reboot")]
            raise ConfigError(f"schedule {schedule!r} is not one of {', '.join(known)} "
                              "(lower case)" + (" (a CronJob has no @reboot)"
                                                if text == "@reboot" else ""))
        return schedule
    parts = text.split()
    if len(parts) != 5:
        raise ConfigError(f"schedule {schedule!r} must have 5 fields (minute hour day-of-month "
                          f"month day-of-week) or be one of {', '.join(DESCRIPTORS)}; it has "
                          f"{len(parts)}")
    for part, (name, low, high, names) in zip(parts, FIELDS, strict=True):
        top = 6 if kubernetes and name == "day of week" else high
        for item in part.split(","):
            why = _bad_item(item, low, top, names)
            if why:
                raise ConfigError(f"schedule {schedule!r}: {name} {item!r} {why}")
    return schedule


def _bad_item(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    """Why one list item of a field is refused, or None."""
    match = _ITEM.match(item)
    if not match:
        return f"is not {_FORMS}"
    star, first, last, step = match.groups()
    values: list[int] = []
    for word in (first, last):
        if word is None:
            continue
        if word.isdigit():
            number = int(word)
        elif word.lower() in names:
            number = names.index(word.lower()) + low
        else:
            return (f"is not {_FORMS}" if not names else
                    f"has {word!r}, neither a number nor one of {names[0]}…{names[-1]}")
        if not low <= number <= high:
            return f"is outside {low}-{high}"
        values.append(number)
    if len(values) == 2 and values[0] > values[1]:
        return f"is outside {low}-{high}: the range runs backwards (crond would never run it)"
    if step is not None:
        if not step.isdigit():
            return f"is not {_FORMS}"
        if star is None and last is None:
            return (f"has a step of a single value: crond steps only * or a range "
                    f"({first}-{high}/{step})")
        if not 1 <= int(step) <= high - low:
            return f"has step {step}, out of range 1-{high - low}"
    return None


def every_to_schedule(every: str) -> str:
    """`2m` → `*/2 * * * *`, `1h` → `0 * * * *`, `@hourly` as it is; what cron can repeat
    evenly."""
    if every.strip().startswith("@"):
        try:
            return validate_schedule(every.strip())
        except ConfigError as e:
            raise ConfigError(f"--every: {e}") from None
    match = re.fullmatch(r"(\d+)([mh])", every.strip())
    if not match:
        raise ConfigError(f"--every {every!r}: give minutes or hours, like 2m or 1h, or one "
                          f"of {', '.join(DESCRIPTORS)}")
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


@dataclass(frozen=True)
class Target:
    """Where the entry's check acts, fixed at install time."""

    kubeconfig: str
    context: str
    namespace: str
    pushgateway: str | None = None


def resolve_target(namespace: str, kubeconfig: str | None = None, context: str | None = None,
                   pushgateway: str | None = None, env: Mapping[str, str] | None = None,
                   home: Path | None = None) -> Target:
    """The target in effect now: the given kubeconfig, else the first file of $KUBECONFIG,
    else ~/.kube/config, made absolute; the given context, else that file's current-context.
    Errors name the file and the context."""
    env = os.environ if env is None else env
    chosen = kubeconfig or env.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        (home or Path.home()) / ".kube" / "config")
    path = Path(chosen).expanduser().absolute()
    option = "--kubeconfig" if kubeconfig else (
        "$KUBECONFIG" if env.get("KUBECONFIG") else "the default ~/.kube/config")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"kubeconfig {path} ({option}): cannot read it: "
                          f"{e.strerror or e}; pass --kubeconfig FILE") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"kubeconfig {path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: not a kubeconfig (no mapping)")
    contexts = [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)]
    chosen_context = context or doc.get("current-context")
    if not chosen_context:
        raise ConfigError(f"kubeconfig {path} has no current-context; pass --context NAME "
                          f"(one of: {', '.join(map(str, contexts)) or 'none'})")
    if chosen_context not in contexts:
        raise ConfigError(f"kubeconfig {path} has no context {chosen_context!r} "
                          f"(it has: {', '.join(map(str, contexts)) or 'none'})")
    return Target(str(path), str(chosen_context), namespace, pushgateway)


def entry(schedule: str, config: Path, log: Path, target: Target) -> str:
    """The crontab line: never two checks at once (flock -n), output appended to `log`,
    the kubeconfig, context and namespace pinned."""
    flock = shutil.which("flock") or "flock"
    config = config.resolve()
    tag = marker(config)
    lock = Path("/tmp") / f"{tag.replace(':', '-')}.lock"
    command = [flock, "-n", str(lock), sys.executable, "-m", "devtrip_scale", "check",
               "--config", str(config), "--kubeconfig", target.kubeconfig,
               "--context", target.context, "--namespace", target.namespace]
    if target.pushgateway:
        command += ["--pushgateway", target.pushgateway]
    return (f"{validate_schedule(schedule)} {shlex.join(command)} "
            f">> {shlex.quote(str(log))} 2>&1  # {tag}")


_OPTIONS = {"--config": "config", "--kubeconfig": "kubeconfig", "--context": "context",
            "--namespace": "namespace", "--pushgateway": "pushgateway"}


def describe(line: str) -> dict[str, Any]:
    """An installed entry as data: schedule, config, the pinned target (None where an entry
    from an older devscale pins nothing), log, and the line itself (the Pushgateway's
    credentials, if any, masked)."""
    from devtrip_scale.core.redact import redact_url

    body, _, tag = line.partition("  # ")
    width = 1 if body.startswith("@") else 5        # `@hourly cmd` or five fields
    fields = body.split(None, width)
    schedule = " ".join(fields[:width])
    rest = fields[width] if len(fields) > width else ""
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    found: dict[str, Any] = dict.fromkeys(_OPTIONS.values())
    for option, value in pairwise(words):
        if option in _OPTIONS:
            found[_OPTIONS[option]] = value
    log = words[words.index(">>") + 1] if ">>" in words[:-1] else None
    if found["pushgateway"]:
        shown = redact_url(found["pushgateway"])
        line = line.replace(found["pushgateway"], shown)
        found["pushgateway"] = shown
    return {"schedule": schedule, **found, "log": log, "pinned": found["kubeconfig"] is not None,
            "tag": tag.strip(), "line": line}


def summary(line: str) -> str:
    """The entry, then its target in words."""
    d = describe(line)
    if not d["pinned"]:
        where = ("target not pinned: it follows $KUBECONFIG and its current context; run "
                 "`devscale cron install` again to pin them")
    else:
        where = (f"target: context {d['context']} of {d['kubeconfig']}, namespace "
                 f"{d['namespace']}" + (f", pushes to {d['pushgateway']}" if d["pushgateway"]
                                        else ""))
    return f"{d['line']}\n  {where}"


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
