"""Shipped files agree with the code that describes them: deploy/ with `devscale manifests`,
the Dockerfile's sources exist, the Role grants exactly the verbs devscale uses; a printed set
follows its config (namespace, history ConfigMap, credentials) and names what it leaves out, a set
that could not work is refused; the PrometheusRule form; cron schedules are validated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devtrip_scale.cli import app
from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling import manifests as m
from devtrip_scale.scaling.cron import every_to_schedule, validate_schedule
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
        ("autoscaling", "horizontalpodautoscalers", "list"), ("", "pods", "list"),
        ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "update"),
        ("", "configmaps", "get"), ("", "configmaps", "patch"), ("", "events", "create")}


def test_dockerfile_copies_files_that_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
               for s in line.split()[:-1]]
    assert sources and all((ROOT / s).exists() for s in sources)
    assert "USER 10001" in text and 'ENTRYPOINT ["devscale"]' in text


def test_manifests_commands_print_valid_documents(tmp_path: Path) -> None:
    out = runner.invoke(app, ["manifests", "cronjob", "--image", "reg/ds:1",
                              "-c", str(ROOT / "config" / "devtrip.yaml")])
    assert out.exit_code == 0, out.output
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding", "Lease",
                                         "ConfigMap", "ConfigMap", "CronJob"]
    assert {d["metadata"]["namespace"] for d in docs} == {"devtrip"}
    hpa = yaml.safe_load(runner.invoke(app, ["manifests", "hpa", "api"]).stdout)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    bad = runner.invoke(app, ["manifests", "cronjob", "--schedule", "*/2 * *"])
    assert bad.exit_code == 2 and "5 fields" in bad.output


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CONFIG = """namespace: shop
prometheus: {url: "http://prometheus:9090", bearer_token_env: PROM_TOKEN}
history_configmap: shop-scaling-history
targets: [{deployment: api}]
metrics: [{name: cpu, preset: cpu_utilization, target: {type: Utilization, value: 70}}]
notify:
  slack: {webhook_env: SHOP_SLACK}
  email: {smtp_host: smtp.example.com, sender: ds@example.com, password_env: SHOP_SMTP}
"""


@pytest.mark.parametrize("command", ["cronjob", "loop"])
def test_a_printed_set_follows_its_config(command: str, tmp_path: Path) -> None:
    """The namespace, the history ConfigMap's name and the credentials' variables come from
    the config; the job pins the namespace; the Secret, which is not printed, is named."""
    cfg = write(tmp_path / "shop.yaml", CONFIG)
    out = runner.invoke(app, ["manifests", command, "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    docs = list(yaml.safe_load_all(out.stdout))
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ConfigMap", "shop-scaling-history"), ("ConfigMap", "devscale-config"),
            ("Lease", "devscale-lock"), ("ServiceAccount", "devscale")} <= names
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert ["shop-scaling-history"] in [r.get("resourceNames") for r in role["rules"]]
    [config_map] = [d for d in docs if d["metadata"]["name"] == "devscale-config"]
    assert config_map["data"]["devscale.yaml"] == CONFIG
    [workload] = [d for d in docs if d["kind"] in ("CronJob", "Deployment")]
    pod = (workload["spec"]["jobTemplate"]["spec"]["template"]["spec"] if command == "cronjob"
           else workload["spec"]["template"]["spec"])
    [container] = pod["containers"]
    assert container["args"][-2:] == ["--namespace", "shop"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]} == {
        "SHOP_SLACK": "slack-webhook", "SHOP_SMTP": "smtp-password",
        "EMAIL_RECIPIENTS": "email-recipients", "PROM_TOKEN": "prometheus-token"}
    notice = " ".join(out.stderr.split())
    assert "Secret devscale-secrets is not printed" in notice
    assert "kubectl -n shop create secret generic devscale-secrets" in notice


@pytest.mark.parametrize(("args", "error"), [
    pytest.param(["-n", "devtrip"], "give -c CONFIG: the pods mount the ConfigMap "
                 "devscale-config", id="no-config"),
    pytest.param(["-n", "foo", "-c", "CFG"], "-n foo but CFG scales namespace shop",
                 id="namespace-mismatch"),
    pytest.param(["--without-config"], "--without-config needs -n NAMESPACE",
                 id="without-config-no-namespace"),
    pytest.param(["--without-config", "-n", "Bad_NS"], "'Bad_NS' is not a valid namespace",
                 id="without-config-bad-namespace"),
    pytest.param(["--without-config", "-n", "shop", "-c", "CFG"], "not both",
                 id="config-and-without-config"),
])
@pytest.mark.parametrize("command", ["cronjob", "loop"])
def test_a_set_that_would_not_work_is_refused(command: str, args: list[str], error: str,
                                              tmp_path: Path) -> None:
    cfg = str(write(tmp_path / "shop.yaml", CONFIG))
    out = runner.invoke(app, ["manifests", command, *[cfg if a == "CFG" else a for a in args]])
    assert out.exit_code == 2, out.output
    assert out.stdout == ""
    assert error.replace("CFG", cfg) in " ".join(out.stderr.split())


def test_without_config_prints_the_rest_and_names_the_config_map() -> None:
    out = runner.invoke(app, ["manifests", "cronjob", "--without-config", "-n", "shop"])
    assert out.exit_code == 0, out.output
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout)]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Lease", "ConfigMap", "CronJob"]
    notice = " ".join(out.stderr.split())
    assert "ConfigMap devscale-config (key devscale.yaml) is not printed" in notice
    assert "kubectl -n shop create configmap devscale-config --from-file=devscale.yaml=" \
        in notice


def test_the_environment_does_not_change_what_is_shipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod does not get this shell's $NAMESPACE: the file's namespace is the one scaled."""
    monkeypatch.setenv("NAMESPACE", "elsewhere")
    cfg = write(tmp_path / "shop.yaml", CONFIG)
    out = runner.invoke(app, ["manifests", "cronjob", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out.stdout)} == {"shop"}


def test_cronjob_pushes_to_the_gateway_it_is_given(tmp_path: Path) -> None:
    cfg = write(tmp_path / "shop.yaml", CONFIG)
    out = runner.invoke(app, ["manifests", "cronjob", "-c", str(cfg), "--pushgateway",
                              "http://pushgateway.monitoring:9091"])
    [job] = [d for d in yaml.safe_load_all(out.stdout) if d["kind"] == "CronJob"]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "DEVSCALE_PUSHGATEWAY", "value": "http://pushgateway.monitoring:9091"} in \
        container["env"]


def test_a_pushgateway_url_with_credentials_goes_through_the_secret(tmp_path: Path) -> None:
    cfg = write(tmp_path / "shop.yaml", CONFIG)
    out = runner.invoke(app, ["manifests", "cronjob", "-c", str(cfg), "--pushgateway",
                              "https://ops:s3cret@pushgateway.example"])
    assert out.exit_code == 0, out.output
    assert "s3cret" not in out.stdout + out.stderr
    [job] = [d for d in yaml.safe_load_all(out.stdout) if d["kind"] == "CronJob"]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    [env] = [e for e in container["env"] if e["name"] == "DEVSCALE_PUSHGATEWAY"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "devscale-secrets",
                                                "key": "pushgateway-url", "optional": True}
    assert "--from-literal=pushgateway-url=…" in out.stderr


def test_prometheus_rules_as_a_prometheus_operator_object() -> None:
    out = runner.invoke(app, ["manifests", "prometheus-rules", "--format", "prometheusrule",
                              "-n", "observability"])
    assert out.exit_code == 0, out.output
    rule = yaml.safe_load(out.stdout)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["namespace"] == "observability"
    assert rule["spec"] == m.prometheus_rules()
    plain = yaml.safe_load(runner.invoke(app, ["manifests", "prometheus-rules"]).stdout)
    assert plain == m.prometheus_rules()


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
