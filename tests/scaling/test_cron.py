"""The crontab entry without a crontab: which kubeconfig, context and namespace it pins (and the
errors when they cannot be found), the line it writes, and how `cron show` reads a line back —
pinned or from an older devscale — with a Pushgateway's credentials masked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling.cron import (
    Target,
    describe,
    entry,
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
