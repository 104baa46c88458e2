"""Shipped files agree with the code that describes them: deploy/ with `devscale manifests`,
the Dockerfile's sources exist, the Role grants exactly the verbs devscale uses; cron schedules
are validated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devtrip_scale import manifests as m
from devtrip_scale.cli import app
from devtrip_scale.cron import every_to_schedule, validate_schedule
from devtrip_scale.errors import ConfigError
from tests.conftest import ROOT

runner = CliRunner()


def docs(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize(("file", "objects"), [
    ("deploy/base/rbac.yaml", m.rbac("devtrip")),
    ("deploy/base/state.yaml", m.state("devtrip")),
    ("deploy/base/cronjob.yaml", [m.cronjob("devtrip")]),
    ("deploy/prometheus/devscale-rules.yaml", [m.prometheus_rules()]),
])
def test_deploy_files_are_what_the_code_generates(file: str, objects: list[object]) -> None:
    assert docs(ROOT / file) == objects


def test_kustomization_lists_every_base_file_and_the_config() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy/base/kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        assert (ROOT / "deploy/base" / name).is_file()
    [generator] = kustomization["configMapGenerator"]
    assert generator["name"] == "devscale-config"
    assert (ROOT / "deploy/base/devscale.yaml").read_text() == \
        (ROOT / "config/devtrip.yaml").read_text()


def test_cronjob_is_safe_by_default() -> None:
    job = m.cronjob("devtrip")
    spec = job["spec"]
    assert spec["schedule"] == "*/2 * * * *" and spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]) == {"requests", "limits"}
    assert {e["name"] for e in container["env"]} == {"SLACK_WEBHOOK", "SMTP_PASSWORD",
                                                     "EMAIL_RECIPIENTS"}


def test_role_grants_exactly_what_devscale_calls() -> None:
    granted = {(g, r, v) for rule in m.RULES for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {
        ("apps", "deployments", "get"), ("apps", "deployments", "list"),
        ("apps", "deployments/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "update"),
        ("", "configmaps", "get"), ("", "configmaps", "patch"), ("", "events", "create")}


def test_dockerfile_copies_files_that_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
               for s in line.split()[:-1]]
    assert sources and all((ROOT / s).exists() for s in sources)
    assert "USER 10001" in text and 'ENTRYPOINT ["devscale"]' in text


def test_manifests_commands_print_valid_documents(tmp_path: Path) -> None:
    out = runner.invoke(app, ["manifests", "cronjob", "-n", "prod", "--image", "reg/ds:1",
                              "-c", str(ROOT / "config" / "devtrip.yaml")])
    assert out.exit_code == 0, out.output
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout)]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Lease", "ConfigMap", "ConfigMap",
                     "CronJob"]
    hpa = yaml.safe_load(runner.invoke(app, ["manifests", "hpa", "api"]).stdout)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    bad = runner.invoke(app, ["manifests", "cronjob", "--schedule", "*/2 * *"])
    assert bad.exit_code == 2 and "5 fields" in bad.output


@pytest.mark.parametrize(("schedule", "error"), [
    ("*/2 * * * *", None), ("0 8-20 * * 1-5", None), ("5,35 * * * 0", None),
    ("* * * *", "5 fields"), ("60 * * * *", "minute '60' is outside 0-59"),
    ("* 24 * * *", "hour '24'"), ("* * 0 * *", "day of month '0'"),
    ("*/x * * * *", "minute '*/x' is not"), ("* * * 13 *", "month '13'"),
    ("5-1 * * * *", "outside"),
])
def test_schedules(schedule: str, error: str | None) -> None:
    if error is None:
        assert validate_schedule(schedule) == schedule
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            validate_schedule(schedule)


@pytest.mark.parametrize(("every", "schedule"), [
    ("2m", "*/2 * * * *"), ("1m", "* * * * *"), ("15m", "*/15 * * * *"), ("1h", "0 * * * *"),
    ("6h", "0 */6 * * *"), ("7m", None), ("90m", None), ("2 minutes", None)])
def test_every(every: str, schedule: str | None) -> None:
    if schedule is None:
        with pytest.raises(ConfigError):
            every_to_schedule(every)
    else:
        assert every_to_schedule(every) == schedule
