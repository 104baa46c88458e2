"""The command line through Typer's CliRunner and as a process: help (a description and a
readable metavar for every option, an example per command, shell completion), --debug and DEBUG=1
everywhere, bad flag values and kubeconfigs as clear errors with their exit code, and `-o json` as
exactly one document, also when a run fails before its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from devtrip_scale import __version__
from devtrip_scale.cli import app
from devtrip_scale.core.errors import ExitCode
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


DEVTRIP = ROOT / "config" / "devtrip.yaml"
DAY = ROOT / "examples" / "day.csv"
SIMULATE = ["simulate", "-c", str(DEVTRIP), "--csv", str(DAY)]


@pytest.mark.parametrize(("args", "message"), [
    (["run", "-c", str(DEVTRIP), "--interval", "2x"], "--interval '2x': not a duration"),
    (["run", "-c", str(DEVTRIP), "--interval", "0s"], "--interval '0s': the duration must be "
     "positive"),
    (["run", "-c", str(DEVTRIP), "--interval", "-2m"], "--interval '-2m': the duration must be "
     "positive"),
    (["run", "-c", str(DEVTRIP), "--lease-duration", "soon"], "--lease-duration 'soon': not a "
     "duration"),
    (["run", "-c", str(DEVTRIP), "--listen", "nonsense"], "--listen 'nonsense': not host:port"),
    (["run", "-c", str(DEVTRIP), "--listen", "127.0.0.1:70000"], "--listen '127.0.0.1:70000': "
     "not host:port"),
    ([*SIMULATE, "--interval", "2x"], "--interval '2x': not a duration"),
    ([*SIMULATE, "--interval", "0s"], "--interval '0s': the duration must be positive"),
    ([*SIMULATE, "--interval", "-2m"], "--interval '-2m': the duration must be positive"),
    ([*SIMULATE, "--ready-delay", "later"], "--ready-delay 'later': not a duration"),
    ([*SIMULATE, "--plot", "/nonexistent/dir/x.png"], "--plot /nonexistent/dir/x.png: the "
     "directory /nonexistent/dir does not exist"),
    ([*SIMULATE, "--plot", "chart.pdf"], "--plot chart.pdf: the file must end in .png or .svg"),
], ids=["run-interval-2x", "run-interval-0s", "run-interval-negative", "run-lease-duration",
        "run-listen-nonsense", "run-listen-port-range", "simulate-interval-2x",
        "simulate-interval-0s", "simulate-interval-negative", "simulate-ready-delay",
        "simulate-plot-missing-dir", "simulate-plot-suffix"])
def test_a_bad_flag_value_is_a_clear_config_error(args: list[str], message: str) -> None:
    """Not "internal error (a bug)": the flag and its value are named, exit 2, nothing run.

    `run` refuses before it connects anywhere (there is no kubeconfig here); `simulate` before
    its replay (no table, no chart is written)."""
    result = runner.invoke(app, args, env={"KUBECONFIG": "/nonexistent"})
    assert result.exit_code == ExitCode.CONFIG, result.output
    text = " ".join(result.output.split())
    assert message in text
    assert "internal error" not in text and "Traceback" not in text
    assert "Replica-hours" not in result.stdout


def test_run_listen_on_a_taken_port_is_a_config_error(admin_free_kubeconfig: Path) -> None:
    """The address is in use: `--listen` is named, exit 2 (no cluster call is needed first)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["run", "-c", str(DEVTRIP), "--kubeconfig",
                                     str(admin_free_kubeconfig), "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"--listen 127.0.0.1:{port}: cannot listen there: Address already in use" in " ".join(
        result.output.split())


@pytest.fixture
def admin_free_kubeconfig(tmp_path: Path) -> Path:
    """A well-formed kubeconfig whose API server does not exist (nothing listens there)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def _broken_config(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [{deployment: api}]\nmetrics: [{name: x}]\n")
    return bad


@pytest.mark.parametrize("how", ["flag", "DEBUG=1", "root-flag"])
@pytest.mark.parametrize("command", [
    ["check", "-c", "{bad}"], ["run", "-c", "{bad}"], ["simulate", "-c", "{bad}", "--csv",
                                                       str(DAY)],
    ["config", "validate", "-c", "{bad}"], ["config", "show", "-c", "{bad}"],
    ["config", "init", "{existing}"], ["notify", "test", "-c", "{bad}"],
], ids=lambda c: "-".join(w for w in c if not w.startswith(("-", "{", "/"))))
def test_debug_works_on_every_command(tmp_path: Path, command: list[str], how: str) -> None:
    """`--debug`, `devscale --debug CMD` and DEBUG=1 each add the traceback to an error."""
    bad = _broken_config(tmp_path)
    args = [a.format(bad=bad, existing=bad) for a in command]
    env = {"DEBUG": ""}
    if how == "flag":
        args.append("--debug")
    elif how == "root-flag":
        args.insert(0, "--debug")
    else:
        env["DEBUG"] = "1"
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "Traceback" in result.output
    plain = runner.invoke(app, [a.format(bad=bad, existing=bad) for a in command],
                          env={"DEBUG": ""})
    assert plain.exit_code == ExitCode.CONFIG and "Traceback" not in plain.output


def test_debug_before_a_command_of_another_group_works_too(tmp_path: Path) -> None:
    """`manifests` and `cron` have no --debug of their own: the root flag reaches them."""
    result = runner.invoke(app, ["--debug", "manifests", "hpa", "api", "--min", "5", "--max",
                                 "2"], env={"DEBUG": ""})
    assert result.exit_code == ExitCode.CONFIG and "Traceback" in result.output


MY_COMMANDS = [["check"], ["run"], ["simulate"], ["config", "validate"], ["config", "show"],
               ["config", "init"], ["notify", "test"], ["workers", "serve"],
               ["workers", "submit"], ["workers", "status"], ["pipeline", "run"],
               ["pipeline", "status"], ["pipeline", "logs"], ["pipeline", "cancel"]]


def _command(path: list[str]) -> Any:
    """The click command behind `devscale PATH…` (typer ships its own copy of click)."""
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", MY_COMMANDS, ids=" ".join)
def test_every_option_has_a_description_and_a_readable_metavar(path: list[str]) -> None:
    options = [p for p in _command(path).params if p.param_type_name == "option" and not p.hidden]
    assert options
    for option in options:
        assert option.help, f"{option.opts} has no description"
    # the options' part: typer writes an argument's type after its name whatever its metavar
    shown = runner.invoke(app, [*path, "--help"]).output.split("Options:", 1)[1]
    for generic in ("<str>", "<int>", "<integer>", "<float>", "<text>", "TEXT", "INTEGER"):
        assert generic not in shown, f"a metavar shows the type, not what to give: {generic}"


@pytest.mark.parametrize("path", MY_COMMANDS, ids=" ".join)
def test_every_command_help_shows_an_example(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    example = result.output.split("Example:\n", 1)[1].splitlines()[0]
    assert example.strip().split()[0] in ("devscale", "NAMESPACE=staging", "DEVSCALE_API_TOKEN=…",
                                          "SLACK_WEBHOOK=https://hooks.slack.com/services/…")
    assert f"devscale {' '.join(path)}" in example


def test_run_help_describes_its_options() -> None:
    text = " ".join(runner.invoke(app, ["run", "--help"]).output.split())
    for described in ("-n, --namespace <namespace> Namespace of the targets",
                      "--kubeconfig <file> kubeconfig file", "--context <name> kubeconfig context",
                      "--debug On an unexpected error", "--interval <duration>",
                      "--listen <host:port>"):
        assert described in text


def test_shell_completion_is_offered_and_completes() -> None:
    shown = run_cli(["--show-completion", "bash"])
    assert shown.returncode == 0 and "_DEVSCALE_COMPLETE=complete_bash" in shown.stdout
    assert "--install-completion" in runner.invoke(app, ["--help"]).output
    words = run_cli([], env={"_DEVSCALE_COMPLETE": "complete_bash",
                             "COMP_WORDS": "devscale check -o ", "COMP_CWORD": "3"})
    assert words.stdout.split() == ["table", "wide", "json"]


def _one_document(stdout: str) -> dict[str, Any]:
    """stdout is exactly one JSON document (json.loads refuses anything after it)."""
    doc = json.loads(stdout)
    assert isinstance(doc, dict) and doc["schemaVersion"] == 1
    return doc


@pytest.mark.parametrize("failure", ["config-error", "no-kubeconfig", "api-unreachable"])
def test_check_json_is_one_document_also_when_the_run_fails_early(
        tmp_path: Path, admin_free_kubeconfig: Path, failure: str) -> None:
    config, kubeconfig = DEVTRIP, admin_free_kubeconfig
    if failure == "config-error":
        config = _broken_config(tmp_path)
    elif failure == "no-kubeconfig":
        kubeconfig = tmp_path / "missing"
    result = runner.invoke(app, ["check", "-c", str(config), "--kubeconfig", str(kubeconfig),
                                 "-o", "json"])
    doc = _one_document(result.stdout)
    code = {"config-error": ExitCode.CONFIG, "no-kubeconfig": ExitCode.KUBERNETES,
            "api-unreachable": ExitCode.KUBERNETES}[failure]
    assert result.exit_code == doc["exitCode"] == code
    assert doc["error"]["kind"] == code.name.lower()
    assert doc["error"]["message"].split("\n")[0] in result.stderr
    assert doc["deployments"] == [] and doc["namespace"] == (
        None if failure == "config-error" else "devtrip")


def test_config_validate_json(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["config", "validate", "-c", str(DEVTRIP), "-o", "json"])
    doc = _one_document(ok.stdout)
    assert ok.exit_code == doc["exitCode"] == 0 and doc["error"] is None
    assert (doc["valid"], doc["targets"], doc["metrics"], doc["namespace"]) == (
        True, 1, 5, "devtrip")
    bad = runner.invoke(app, ["config", "validate", "-c", str(_broken_config(tmp_path)),
                              "-o", "json"])
    doc = _one_document(bad.stdout)
    assert bad.exit_code == doc["exitCode"] == ExitCode.CONFIG and doc["valid"] is False
    assert "metrics[0].target: Field required" in doc["error"]["message"]


def test_config_show_json_and_yaml_print_the_effective_defaults(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["config", "show", "-c", str(DEVTRIP)])
    assert shown.exit_code == 0 and "null" not in shown.stdout
    settings = yaml.safe_load(shown.stdout)
    behavior = settings["scaling"]["behavior"]
    assert behavior["scaleDown"] == {
        "stabilizationWindowSeconds": 300, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}], "tolerance": 0.1}
    assert behavior["scaleUp"]["policies"] == [
        {"type": "Percent", "value": 100, "periodSeconds": 15},
        {"type": "Pods", "value": 4, "periodSeconds": 15}]
    assert settings["targets"] == [{"selector": "app.kubernetes.io/part-of=devtrip",
                                    "minReplicas": 2, "maxReplicas": 10}]
    as_json = runner.invoke(app, ["config", "show", "-c", str(DEVTRIP), "-o", "json"])
    doc = _one_document(as_json.stdout)
    assert doc["settings"] == settings and doc["exitCode"] == 0
    missing = runner.invoke(app, ["config", "show", "-c", str(tmp_path / "nope.yaml"),
                                  "-o", "json"])
    doc = _one_document(missing.stdout)
    assert missing.exit_code == doc["exitCode"] == ExitCode.CONFIG and doc["settings"] is None


def test_config_init_tells_to_validate_the_file_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    header = path.read_text().splitlines()[1]
    assert f"devscale config validate -c {path}" in header


@pytest.mark.parametrize(("how", "blamed"), [
    ("flag", "--namespace: namespace: 'Bad_NS' is not a valid namespace name"),
    ("env", "$NAMESPACE: namespace: 'Bad_NS' is not a valid namespace name"),
])
def test_a_bad_namespace_names_where_it_came_from_not_a_config_line(how: str,
                                                                    blamed: str) -> None:
    args = ["check", "-c", str(DEVTRIP), "--kubeconfig", "/nonexistent"]
    result = runner.invoke(app, [*args, "-n", "Bad_NS"] if how == "flag" else args,
                           env={"NAMESPACE": "Bad_NS"} if how == "env" else None)
    assert result.exit_code == ExitCode.CONFIG
    assert blamed in result.output
    assert f"{DEVTRIP}:" not in result.output


def test_a_malformed_kubeconfig_is_named_with_exit_4(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nclusters: [\n  - name: x\n")
    result = runner.invoke(app, ["check", "-c", str(DEVTRIP), "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == ExitCode.KUBERNETES, result.output
    assert f"kubeconfig {kubeconfig} is malformed: not valid YAML at line 3" in " ".join(
        result.output.split())
    assert "internal error" not in result.output


def test_a_missing_exec_credential_plugin_stops_the_run_with_its_name(tmp_path: Path) -> None:
    """Not a raw `ERROR:root:` line followed by an unauthenticated run."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "devscale-no-such-credential-plugin", "interactiveMode": "Never"}}}]}))
    proc = run_cli(["check", "-c", str(DEVTRIP), "--kubeconfig", str(kubeconfig)])
    assert proc.returncode == ExitCode.KUBERNETES, proc.stderr
    assert "ERROR:root" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert (f"cannot use kubeconfig {kubeconfig}: the user's exec credential plugin failed: "
            "No such file or directory: 'devscale-no-such-credential-plugin'") in text
    assert "unreachable" not in text   # it stopped before any API call


def test_validate_online_with_prometheus_down_is_a_metrics_error(tmp_path: Path) -> None:
    """Prometheus unreachable says nothing about the config: exit 3, not 2."""
    result = runner.invoke(app, ["config", "validate", "-c", str(DEVTRIP), "--online", "-o",
                                 "json"], env={"METRICS_SERVER": f"127.0.0.1:{free_port()}"})
    doc = _one_document(result.stdout)
    assert result.exit_code == doc["exitCode"] == ExitCode.METRICS, result.output
    assert doc["error"]["kind"] == "metrics"
    assert "5 metric(s) could not be checked" in doc["error"]["message"]
    assert "cannot connect to Prometheus at http://127.0.0.1:" in doc["error"]["message"]


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{title}\n")
    return text[start:text.find("\n#", start + len(title) + 2)]


def test_the_readme_exit_code_table_is_one_table_with_every_code() -> None:
    """Each row directly follows the previous one (a row after a paragraph renders as text)."""
    lines = _readme_section("### Exit codes").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| code"))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append(int(line.split("|")[1]))
    assert rows == sorted(int(c) for c in ExitCode)
    assert not any(line.startswith("| ") for line in lines[first + 2 + len(rows):])


def test_the_readme_documents_every_field_of_the_json_documents(
        tmp_path: Path, admin_free_kubeconfig: Path) -> None:
    section = _readme_section("### JSON output")
    docs = [
        runner.invoke(app, ["check", "-c", str(DEVTRIP), "--kubeconfig", str(tmp_path / "x"),
                            "-o", "json"]).stdout,
        runner.invoke(app, ["config", "validate", "-c", str(DEVTRIP), "-o", "json"]).stdout,
        runner.invoke(app, ["config", "show", "-c", str(DEVTRIP), "-o", "json"]).stdout,
        runner.invoke(app, [*SIMULATE, "-d", "api", "-o", "json"]).stdout,
    ]
    for doc in docs:
        for key in _one_document(doc):
            assert f"`{key}`" in section or f"`{key}[]`" in section, f"{key} undocumented"


@pytest.mark.parametrize("value", ["express:*", "0", "false"])
def test_a_debug_variable_that_is_not_a_yes_neither_breaks_nor_debugs(value: str) -> None:
    """DEBUG is also Node's debug module's variable: only 1/true/yes/on turn debugging on."""
    ok = runner.invoke(app, ["config", "validate", "-c", str(DEVTRIP)], env={"DEBUG": value})
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["check", "-c", str(DEVTRIP), "--kubeconfig", "/nonexistent"],
                        env={"DEBUG": value})
    assert bad.exit_code == ExitCode.KUBERNETES and "Traceback" not in bad.output
