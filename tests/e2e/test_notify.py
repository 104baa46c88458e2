"""Notifications from `devscale check` processes to real receivers (aiosmtpd with STARTTLS, a
local HTTP receiver for Slack): routing, one message per run, the quiet period across separate
processes, a dead SMTP server that changes no scaling, `notify test`, and no secret shown; and
runs that fail before a report (the API server down, the lock held run after run), told once
and resolved by the next good run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtrip_scale.kube.lease import LeaseLock
from testbed.exporter import SyntheticExporter
from testbed.net import free_port
from testbed.prometheus import Prometheus
from testbed.receivers import SlackReceiver, SmtpServer
from tests.conftest import Cluster, run_cli, settle, write_config

pytestmark = pytest.mark.integration

PASSWORD = "canary-smtp-pa55w0rd"
MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, password=PASSWORD)
    yield server
    server.stop()


def configure(cfg: Path, smtp_port: int, ca_file: Path) -> Path:
    doc = yaml.safe_load(cfg.read_text())
    doc["notify"] = {"quiet_minutes": 30, "email": {
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "security": "starttls",
        "username": "devscale", "password_env": "SMTP_PASSWORD",
        "sender": "devscale@devtrip.example", "ca_file": str(ca_file)}}
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


def env(slack: SlackReceiver) -> dict[str, str]:
    return {"SLACK_WEBHOOK": slack.url, "SMTP_PASSWORD": PASSWORD,
            "EMAIL_RECIPIENTS": "oncall@devtrip.example, lead@devtrip.example"}


def check(cfg: Path, kubeconfig: Path, environment: dict[str, str], *extra: str
          ) -> tuple[int, dict[str, Any], str]:
    proc = run_cli(["check", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "-o", "json",
                    *extra], env=environment)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture
def busy(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
         tmp_path: Path, smtp: SmtpServer) -> Path:
    """api (2 → 5, scaled) and web (maxed out: wants 20, max 10), memory-driven."""
    cluster.deployment("api", 2)
    cluster.deployment("web", 8)
    exporter.set_load(cluster.namespace, "api", pods=2, memory_percent=200)
    exporter.set_load(cluster.namespace, "web", pods=8, memory_percent=200)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "api"}, {"deployment": "web"}], minReplicas=2,
                       maxReplicas=10)
    return configure(cfg, smtp.port, smtp.ca_file)


def test_routing_one_slack_message_per_run_and_email_for_the_important(
        cluster: Cluster, busy: Path, slack: SlackReceiver, smtp: SmtpServer,
        admin_kubeconfig: Path) -> None:
    code, doc, _ = check(busy, admin_kubeconfig, env(slack))
    assert code == 0, doc
    assert (cluster.replicas("api"), cluster.replicas("web")) == (5, 10)
    [message] = slack.requests                                  # one message per run
    text = json.dumps(message["body"], ensure_ascii=False)
    assert "api scaled up: 2 → 5" in text
    assert "web needs 20 replicas but its maximum is 10" in text
    sections = [b for b in message["body"]["blocks"] if b["type"] == "section"]
    assert len(sections) == 2                                   # a section per Deployment
    [mail] = smtp.messages                                      # email: capacity, not scaling
    assert mail["Subject"] == "[devscale] " + cluster.namespace + \
        ": web needs 20 replicas but its maximum is 10"
    assert mail["To"] == "oncall@devtrip.example, lead@devtrip.example"
    assert {n["kind"] for n in doc["notified"]} == {"scaled", "capacity_exhausted"}


def test_quiet_period_holds_across_separate_processes(
        cluster: Cluster, busy: Path, slack: SlackReceiver, smtp: SmtpServer,
        admin_kubeconfig: Path) -> None:
    assert check(busy, admin_kubeconfig, env(slack))[0] == 0
    assert (len(slack.requests), len(smtp.messages)) == (1, 1)
    code, doc, _ = check(busy, admin_kubeconfig, env(slack))   # web still maxed out
    assert code == 0
    assert doc["notified"] == []
    assert (len(slack.requests), len(smtp.messages)) == (1, 1)


def test_dead_smtp_changes_no_scaling_and_is_reported(
        cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
        slack: SlackReceiver, smtp: SmtpServer, admin_kubeconfig: Path, tmp_path: Path) -> None:
    cluster.deployment("web", 8)
    exporter.set_load(cluster.namespace, "web", pods=8, memory_percent=200)
    settle()
    cfg = write_config(tmp_path / "c.yaml", cluster.namespace, prometheus.url, [MEMORY],
                       [{"deployment": "web"}], minReplicas=2, maxReplicas=10)
    configure(cfg, free_port(), smtp.ca_file)                  # nothing listens there
    code, doc, _ = check(cfg, admin_kubeconfig, env(slack))
    assert code == 7
    assert cluster.replicas("web") == 10                       # the scaling stands
    assert doc["notifyFailures"][0].startswith("email: SMTP 127.0.0.1:")
    assert len(slack.requests) == 1                           # the other channel still told


def test_revoked_webhook_is_a_configuration_error_in_the_output(
        cluster: Cluster, busy: Path, slack: SlackReceiver, admin_kubeconfig: Path) -> None:
    environment = {**env(slack), "SLACK_WEBHOOK": slack.url.replace("canary", "revoked")}
    code, doc, _ = check(busy, admin_kubeconfig, environment)
    assert code == 7
    [failure] = [f for f in doc["notifyFailures"] if f.startswith("slack")]
    assert "webhook is revoked" in failure
    assert cluster.replicas("api") == 5


def test_notify_test_reaches_every_channel(busy: Path, slack: SlackReceiver,
                                           smtp: SmtpServer) -> None:
    proc = run_cli(["notify", "test", "-c", str(busy)], env=env(slack))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["slack: sent", "email: sent"]
    assert slack.requests[0]["body"]["text"].startswith("devscale · ")
    assert smtp.messages[0]["Subject"].startswith("[devscale]")


def test_no_secret_in_anything_printed_or_stored(cluster: Cluster, busy: Path,
                                                 slack: SlackReceiver, smtp: SmtpServer,
                                                 admin_kubeconfig: Path) -> None:
    from kubernetes import client

    environment = env(slack)
    _, doc, err = check(busy, admin_kubeconfig, environment, "--debug")
    shown = [json.dumps(doc), err]
    for args in (["config", "show", "-c", str(busy)], ["notify", "test", "-c", str(busy)],
                 ["check", "-c", str(busy), "--kubeconfig", str(admin_kubeconfig), "--debug"]):
        proc = run_cli(args, env=environment)
        shown += [proc.stdout, proc.stderr]
    core = client.CoreV1Api(cluster.api)
    shown += [e.message for e in core.list_namespaced_event(cluster.namespace).items]
    shown += [json.dumps(cm.data) for cm in core.list_namespaced_config_map(
        cluster.namespace).items]
    shown += [json.dumps(r["body"]) for r in slack.requests]
    shown += [m.as_string() for m in smtp.messages]
    for secret in (PASSWORD, "canary-webhook-s3cr3t", slack.url):
        assert all(secret not in text for text in shown), secret


def dead_kubeconfig(admin_kubeconfig: Path, tmp_path: Path) -> Path:
    """The admin kubeconfig, pointed at a loopback port where no API server listens."""
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "dead-kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def texts(requests: list[dict[str, Any]]) -> list[str]:
    return [r["body"]["text"] for r in requests]


def test_api_server_down_is_told_once_and_resolved_by_the_next_good_run(
        cluster: Cluster, busy: Path, slack: SlackReceiver, smtp: SmtpServer,
        admin_kubeconfig: Path, tmp_path: Path) -> None:
    dead = dead_kubeconfig(admin_kubeconfig, tmp_path)
    first = run_cli(["check", "-c", str(busy), "--kubeconfig", str(dead)], env=env(slack))
    assert first.returncode == 4, first.stderr
    assert "devscale: notified: devscale could not use the Kubernetes API" in first.stderr
    [told] = texts(slack.requests)
    assert "devscale could not use the Kubernetes API" in told
    [mail] = smtp.messages                                  # failures go by email too
    assert "could not use the Kubernetes API" in mail["Subject"]
    assert "unreachable" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    second = run_cli(["check", "-c", str(busy), "--kubeconfig", str(dead)], env=env(slack))
    assert second.returncode == 4
    assert "notified" not in second.stderr                  # a separate process, still quiet
    assert (len(slack.requests), len(smtp.messages)) == (1, 1)

    code, doc, _ = check(busy, admin_kubeconfig, env(slack))   # the API server is back
    assert code == 0 and cluster.replicas("api") == 5
    [_, recovery] = texts(slack.requests)                     # one message for the whole run
    assert "resolved: devscale could not use the Kubernetes API" in recovery
    assert "api scaled up: 2 → 5" in recovery
    assert {n["kind"] for n in doc["notified"]} == {"recovered", "scaled", "capacity_exhausted"}
    for shown in (first.stderr, second.stderr, json.dumps(doc), *texts(slack.requests)):
        assert slack.url not in shown and PASSWORD not in shown


def test_lock_held_for_n_runs_in_a_row_is_told_naming_the_holder(
        cluster: Cluster, busy: Path, slack: SlackReceiver, smtp: SmtpServer,
        admin_kubeconfig: Path) -> None:
    holder = LeaseLock(cluster.api, cluster.namespace, identity="devscale-run-loop-0",
                       duration_seconds=600)
    holder.acquire()
    try:
        codes = []
        for _ in range(4):   # told on the third (notify.lock_contention_runs), quiet on the fourth
            proc = run_cli(["check", "-c", str(busy), "--kubeconfig", str(admin_kubeconfig)],
                           env=env(slack))
            codes.append(proc.returncode)
            assert ("notified" in proc.stderr) == (len(codes) == 3), proc.stderr
    finally:
        holder.release()
    assert codes == [6, 6, 6, 6]
    assert cluster.replicas("api") == 2                      # nothing changed meanwhile
    [told] = texts(slack.requests)
    assert "devscale runs kept out by the lock" in told
    [section] = [b["text"]["text"] for b in slack.requests[0]["body"]["blocks"]
                 if b["type"] == "section"]
    assert "3 runs in a row" in section and "devscale-run-loop-0" in section
    assert len(smtp.messages) == 1

    code, _, _ = check(busy, admin_kubeconfig, env(slack))   # the holder is gone
    assert code == 0 and cluster.replicas("api") == 5
    assert "resolved: devscale runs kept out by the lock" in texts(slack.requests)[1]
