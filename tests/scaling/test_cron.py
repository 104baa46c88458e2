"""The crontab entry without a crontab: which kubeconfig, context and namespace it pins (and the
errors when they cannot be found), the line it writes, and how `cron show` reads a line back —
pinned or from an older devscale — with a Pushgateway's credentials masked."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling.cron import (
    Target,
    describe,
    entry,
    every_to_schedule,
    resolve_target,
    summary,
    validate_schedule,
)


def kubeconfig(path: Path, current: str | None = "dev", contexts: tuple[str, ...] = ("dev",
                                                                                     "prod")
               ) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config",
           "contexts": [{"name": c, "context": {"cluster": c, "user": "me"}} for c in contexts],
           **({"current-context": current} if current else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("given", "env", "expected"), [
    pytest.param(None, None, "home", id="default-home-kube-config"),
    pytest.param(None, "first", "first", id="kubeconfig-env"),
    pytest.param(None, "first:second", "first", id="kubeconfig-env-list-first-file"),
    pytest.param("given", "first", "given", id="option-wins"),
])
def test_which_kubeconfig_is_pinned(given: str | None, env: str | None, expected: str,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = {"home": kubeconfig(tmp_path / "home" / ".kube" / "config"),
             "first": kubeconfig(tmp_path / "first"), "second": kubeconfig(tmp_path / "second"),
             "given": kubeconfig(tmp_path / "given")}
    environ = {"KUBECONFIG": env} if env else {}
    target = resolve_target("shop", given, env=environ, home=tmp_path / "home")
    assert target == Target(str(files[expected]), "dev", "shop")
    assert Path(target.kubeconfig).is_absolute()


def test_a_relative_kubeconfig_is_made_absolute(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig(tmp_path / "kc")
    monkeypatch.chdir(tmp_path)
    assert resolve_target("shop", "kc").kubeconfig == str(tmp_path / "kc")


def test_the_context_is_the_current_one_unless_given(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", current="prod")
    assert resolve_target("shop", str(path)).context == "prod"
    assert resolve_target("shop", str(path), "dev").context == "dev"


@pytest.mark.parametrize(("current", "context", "error"), [
    pytest.param(None, None, "has no current-context; pass --context NAME (one of: dev, prod)",
                 id="no-current-context"),
    pytest.param("dev", "staging", "has no context 'staging' (it has: dev, prod)",
                 id="unknown-context"),
])
def test_context_errors(current: str | None, context: str | None, error: str,
                        tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", current=current)
    with pytest.raises(ConfigError, match=re.escape(f"kubeconfig {path} {error}")):
        resolve_target("shop", str(path), context)


@pytest.mark.parametrize(("text", "error"), [
    pytest.param(None, "(--kubeconfig): cannot read it: No such file or directory; pass "
                 "--kubeconfig FILE", id="missing"),
    pytest.param("a: [b", "not valid YAML", id="not-yaml"),
    pytest.param("- a list", "not a kubeconfig", id="not-a-mapping"),
])
def test_kubeconfig_errors_name_the_file(text: str | None, error: str, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"kubeconfig {path}")) as caught:
        resolve_target("shop", str(path))
    assert error in str(caught.value)


def test_the_entry_pins_the_target_and_reads_back(tmp_path: Path) -> None:
    config = tmp_path / "my config.yaml"
    target = Target("/home/me/.kube/config", "dev", "shop",
                    "https://ops:s3cret@pushgateway.example:9091")
    line = entry("*/2 * * * *", config, tmp_path / "check.log", target)
    assert "--kubeconfig /home/me/.kube/config --context dev --namespace shop" in line
    assert f"--config '{config}'" in line
    described = describe(line)
    assert {k: described[k] for k in ("schedule", "config", "kubeconfig", "context",
                                      "namespace", "pushgateway", "log", "pinned")} == {
        "schedule": "*/2 * * * *", "config": str(config), "kubeconfig": "/home/me/.kube/config",
        "context": "dev", "namespace": "shop",
        "pushgateway": "https://ops:***@pushgateway.example:9091",
        "log": str(tmp_path / "check.log"), "pinned": True}
    assert "s3cret" not in described["line"] and "s3cret" not in summary(line)
    assert summary(line).splitlines()[1] == (
        "  target: context dev of /home/me/.kube/config, namespace shop, pushes to "
        "https://ops:***@pushgateway.example:9091")


def test_an_entry_from_an_older_devscale_says_it_is_not_pinned() -> None:
    old = ("*/2 * * * * /usr/bin/flock -n /tmp/devscale-abc.lock /usr/bin/python3 -m "
           "devtrip_scale check --config /etc/devscale/devscale.yaml >> /var/log/d.log 2>&1  "
           "# devscale:abc")
    described = describe(old)
    assert described["pinned"] is False and described["kubeconfig"] is None
    assert described["config"] == "/etc/devscale/devscale.yaml"
    assert "target not pinned" in summary(old)


def test_the_shipped_crontab_line_pins_its_target() -> None:
    from tests.conftest import ROOT

    [line] = [x for x in (ROOT / "cron" / "devscale.crontab").read_text().splitlines()
              if x and not x.startswith("#")]
    described = describe(line)
    assert described["pinned"] and described["context"] and described["namespace"]
    assert validate_schedule(described["schedule"]) == "*/2 * * * *"


# ---------------------------------------------------------------- schedules, as crond takes them

# (schedule, what devscale says when it refuses it or None, what Debian's `crontab -n` says)
SCHEDULES = [
    pytest.param("*/2 * * * *", None, True, id="every-2-minutes"),
    pytest.param("@hourly", None, True, id="hourly"),
    pytest.param("@reboot", None, True, id="reboot"),
    pytest.param("@yearly", None, True, id="yearly"),
    pytest.param("@annually", None, True, id="annually"),
    pytest.param("@monthly", None, True, id="monthly"),
    pytest.param("@weekly", None, True, id="weekly"),
    pytest.param("@daily", None, True, id="daily"),
    pytest.param("@midnight", None, True, id="midnight"),
    pytest.param("*/5 8-18 * * mon-fri", None, True, id="weekday-names-range"),
    pytest.param("0 9 * * MON-FRI", None, True, id="names-any-case"),
    pytest.param("0 9 * * Mon,Wed,fri", None, True, id="names-list"),
    pytest.param("0 9 * * 1-5,sat", None, True, id="numbers-and-names"),
    pytest.param("0 0 1 jan *", None, True, id="month-name"),
    pytest.param("0 0 1 JAN-mar/2 *", None, True, id="month-name-range-step"),
    pytest.param("0 0 1 1-dec *", None, True, id="number-to-name-range"),
    pytest.param("0 0 * * 0", None, True, id="sunday-0"),
    pytest.param("0 0 * * 7", None, True, id="sunday-7"),
    pytest.param("0 0 * * sun", None, True, id="sunday-name"),
    pytest.param("0 0 * * fri-7", None, True, id="friday-to-sunday"),
    pytest.param("0 0 * * */2", None, True, id="day-of-week-step"),
    pytest.param("0-30/10,45 */6 1-15 * *", None, True, id="ranges-steps-lists"),
    pytest.param("01 02 03 04 05", None, True, id="leading-zeros"),
    # refused by crond as well
    pytest.param("@HOURLY", "is not one of @reboot, @yearly", False, id="descriptor-upper"),
    pytest.param("@every", "is not one of @reboot", False, id="unknown-descriptor"),
    pytest.param("* * * *", "must have 5 fields", False, id="four-fields"),
    pytest.param("60 * * * *", "minute '60' is outside 0-59", False, id="minute-60"),
    pytest.param("* 24 * * *", "hour '24' is outside 0-23", False, id="hour-24"),
    pytest.param("* * 0 * *", "day of month '0' is outside 1-31", False, id="day-0"),
    pytest.param("* * * 13 *", "month '13' is outside 1-12", False, id="month-13"),
    pytest.param("* * * 0 *", "month '0' is outside 1-12", False, id="month-0"),
    pytest.param("* * * * 8", "day of week '8' is outside 0-7", False, id="day-of-week-8"),
    pytest.param("* * * * monday", "day of week 'monday' has 'monday', neither a number nor "
                 "one of sun…sat", False, id="long-day-name"),
    pytest.param("* * * * Sunday", "day of week 'Sunday' has 'Sunday'", False,
                 id="long-sunday"),
    pytest.param("* * * janu *", "month 'janu' has 'janu', neither a number nor one of "
                 "jan…dec", False, id="long-month-name"),
    pytest.param("mon * * * *", "minute 'mon' is not *, N, N-M", False, id="name-in-minute"),
    pytest.param("*/x * * * *", "minute '*/x' is not", False, id="step-not-a-number"),
    pytest.param("*/0 * * * *", "minute '*/0' has step 0, out of range 1-59", False,
                 id="step-0"),
    pytest.param("5/10 * * * *", "minute '5/10' has a step of a single value: crond steps "
                 "only * or a range (5-59/10)", False, id="step-of-a-value"),
    pytest.param("* * * jan/2 *", "month 'jan/2' has a step of a single value", False,
                 id="step-of-a-name"),
    pytest.param("1- * * * *", "minute '1-' is not", False, id="open-range"),
    # crond takes these but would never run them, or not as written
    pytest.param("5-1 * * * *", "minute '5-1' is outside 0-59: the range runs backwards",
                 True, id="backwards-range"),
    pytest.param("0 0 * * fri-sun", "day of week 'fri-sun' is outside 0-7: the range runs "
                 "backwards", True, id="backwards-names"),
    pytest.param("*/60 * * * *", "minute '*/60' has step 60, out of range 1-59", True,
                 id="step-past-the-range"),
    pytest.param("*-5 * * * *", "minute '*-5' is not", True, id="star-range"),
    pytest.param("*/2/3 * * * *", "minute '*/2/3' is not", True, id="two-steps"),
]


@pytest.mark.parametrize(("schedule", "error", "crond"), SCHEDULES)
def test_schedules_as_crond_takes_them(schedule: str, error: str | None, crond: bool,
                                       tmp_path: Path) -> None:
    """Each schedule devscale takes, Debian's cron takes too (`crontab -n`, its dry run, is
    asked); each one it refuses names the field and why."""
    if error is None:
        assert validate_schedule(schedule) == schedule
    else:
        with pytest.raises(ConfigError) as e:
            validate_schedule(schedule)
        assert error in str(e.value) and repr(schedule) in str(e.value)
    crontab = tmp_path / "crontab"
    crontab.write_text(f"{schedule} true\n")
    checked = subprocess.run(["crontab", "-n", str(crontab)], capture_output=True, text=True,
                             check=False)
    assert (checked.returncode == 0) is crond, checked.stdout + checked.stderr


@pytest.mark.parametrize(("schedule", "error"), [
    pytest.param("@hourly", None, id="hourly"),
    pytest.param("0 9 * * mon-fri", None, id="weekday-names"),
    pytest.param("0 0 * * 0", None, id="sunday-0"),
    pytest.param("@reboot", "(a CronJob has no @reboot)", id="reboot"),
    pytest.param("0 0 * * 7", "day of week '7' is outside 0-6", id="sunday-7"),
    pytest.param("0 0 * * mon-7", "day of week 'mon-7' is outside 0-6", id="to-sunday-7"),
])
def test_a_cronjob_schedule_is_checked_as_kubernetes_does(schedule: str,
                                                          error: str | None) -> None:
    """kube-apiserver (batch/v1 CronJob) refuses @reboot and a day of week 7."""
    if error is None:
        assert validate_schedule(schedule, kubernetes=True) == schedule
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            validate_schedule(schedule, kubernetes=True)


@pytest.mark.parametrize(("every", "schedule"), [
    pytest.param("@hourly", "@hourly", id="hourly"),
    pytest.param("@daily", "@daily", id="daily"),
    pytest.param("2m", "*/2 * * * *", id="minutes"),
    pytest.param("@often", None, id="unknown-descriptor"),
])
def test_every_takes_a_descriptor(every: str, schedule: str | None) -> None:
    if schedule is None:
        with pytest.raises(ConfigError, match=re.escape("--every: schedule '@often'")):
            every_to_schedule(every)
    else:
        assert every_to_schedule(every) == schedule


def test_a_descriptor_entry_reads_back(tmp_path: Path) -> None:
    target = Target("/home/me/.kube/config", "dev", "shop")
    line = entry("@hourly", tmp_path / "c.yaml", tmp_path / "check.log", target)
    assert line.startswith("@hourly ")
    described = describe(line)
    assert (described["schedule"], described["config"], described["context"]) == (
        "@hourly", str(tmp_path / "c.yaml"), "dev")
