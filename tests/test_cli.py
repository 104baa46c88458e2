"""The command line through Typer's CliRunner: help, version, config commands, and one exit code
per error class with a one-line message and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devtrip_scale import __version__
from devtrip_scale.cli import app
from devtrip_scale.errors import ExitCode
from testbed.net import free_port
from tests.conftest import ROOT, run_cli

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "check" in result.output and "config" in result.output


def test_check_help_documents_flags_and_exit_codes() -> None:
    result = runner.invoke(app, ["check", "--help"])
    text = " ".join(result.output.split())
    for flag in ("--config", "--namespace", "--deployment", "--dry-run", "--debug", "--output",
                 "--kubeconfig", "--context"):
        assert flag in text
    assert "5 partial failure" in text


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.output.strip() == f"devscale {__version__}"


def test_python_dash_m_works() -> None:
    proc = run_cli(["--version"])
    assert (proc.returncode, proc.stdout.strip()) == (0, f"devscale {__version__}")


def test_config_validate_ok_and_broken(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["config", "validate", "-c", str(ROOT / "config" / "devtrip.yaml")])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: []\nmetrics: []\n")
    result = runner.invoke(app, ["config", "validate", "-c", str(bad)])
    assert result.exit_code == ExitCode.CONFIG
    assert f"{bad}:1: targets" in result.output
    assert "Traceback" not in result.output


def test_config_init_writes_a_valid_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "devscale.yaml"
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    assert runner.invoke(app, ["config", "validate", "-c", str(path)]).exit_code == 0
    again = runner.invoke(app, ["config", "init", str(path)])
    assert again.exit_code == ExitCode.CONFIG and "--force" in again.output


def test_config_show_applies_the_environment() -> None:
    result = runner.invoke(app, ["config", "show", "-c", str(ROOT / "config" / "devtrip.yaml")],
                           env={"NAMESPACE": "staging", "METRICS_SERVER": "prom:9090"})
    shown = yaml.safe_load(result.output)
    assert shown["namespace"] == "staging"
    assert shown["prometheus"]["url"] == "http://prom:9090"


def test_check_with_a_broken_config_changes_nothing_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [{deployment: api}]\nmetrics: [{name: x}]\n")
    result = runner.invoke(app, ["check", "-c", str(bad), "--kubeconfig", "/nonexistent"])
    assert result.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("problem", ["missing-file", "dead-server", "unknown-context"])
def test_kubernetes_problems_exit_4_with_a_clear_message(tmp_path: Path, problem: str) -> None:
    kubeconfig, port = tmp_path / "kubeconfig", free_port()
    if problem != "missing-file":
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    args = ["check", "-c", str(ROOT / "config" / "devtrip.yaml"), "--kubeconfig", str(kubeconfig)]
    if problem == "unknown-context":
        args += ["--context", "nope"]
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.KUBERNETES, result.output
    text = " ".join(result.output.split())
    expected = {"missing-file": f"kubeconfig {kubeconfig} does not exist; check the path given "
                                "to --kubeconfig",
                "dead-server": "API server unreachable or too slow: Connection refused "
                               f"(at https://127.0.0.1:{port})",
                "unknown-context": f"context 'nope' of {kubeconfig}"}[problem]
    assert expected in text
    assert "Traceback" not in text


def test_a_failed_run_without_a_run_memory_is_not_told_and_says_why(tmp_path: Path) -> None:
    """As in the CronJob: a read-only disk. The webhook is never contacted (nothing listens)."""
    result = runner.invoke(app, ["check", "-c", str(ROOT / "config" / "devtrip.yaml"),
                                 "--kubeconfig", str(tmp_path / "missing")],
                           env={"SLACK_WEBHOOK": f"http://127.0.0.1:{free_port()}/hook",
                                "DEVSCALE_STATE_DIR": "/proc/devscale-state"})
    assert result.exit_code == ExitCode.KUBERNETES
    text = " ".join(result.output.split())
    assert "devscale: not notified: no run memory" in text
    assert "set DEVSCALE_STATE_DIR to a writable directory" in text
    assert "hook" not in text
