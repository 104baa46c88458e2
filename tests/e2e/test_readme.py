"""The README's recipes outside its Deploy section, run as written (`bash`, in a temporary
directory, `devscale` being this tree's) against the test bed: "First two commands" (the sandbox
script, in a copy of the repository with its own virtualenv), every line of "Using it" (config,
validate, check in each form, simulate, status, notify, manifests, cron), the two `simulate`
recipes (a CSV with a chart; a week from the bed's Prometheus), the three `status` recipes after a
real check, and "Development" (the fast tier, ruff and mypy). Lines that are not run say why next
to their exclusion. One test fails when the README gains an `sh` block that no test runs."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtrip_scale.scaling import manifests as m
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from testbed.receivers import SlackReceiver
from tests import readme
from tests.conftest import ROOT, Cluster, settle, write_config
from tests.readme import RECIPES, command_part, commands, recipe, run_recipe

root_crontab = readme.root_crontab      # the fixture, under its name in this module

MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}
# The seed's load on `api`, but driven by memory (a gauge): the starter's rate presets read over
# 2 m, which a series a few seconds old cannot fill (they read low, and never win).
LOAD = {"pods": 2, "cpu_percent": 50, "memory_percent": 160, "rps": 120, "p95_seconds": 0.4,
        "active_users": 150}


def test_every_sh_block_of_the_readme_is_run_by_a_test() -> None:
    """Each `sh` block of README.md is registered in tests/readme.py with the test that runs it,
    and that test exists and fetches it: a new block, or a test removed, fails here."""
    every = [b for blocks in readme.readme_sections().values() for b in blocks]
    assert sorted(every) == sorted(recipe(key) for key in RECIPES), \
        "a README `sh` block that no test runs: register it in tests/readme.py RECIPES"
    for key, registered in RECIPES.items():
        path, name = registered.test.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        test = getattr(module, name)
        assert f'"{key}"' in inspect.getsource(test), f"{registered.test} does not run {key}"


def run_lines(key: str, excluded: dict[str, str], checks: dict[str, Callable[[Any], None]],
              cwd: Path, kubeconfig: Path, env: dict[str, str]) -> None:
    """Run every line of a block in order, each as written; every line is either excluded
    with a reason or checked (a new line in the README fails until it is one or the other)."""
    for line in commands(recipe(key)):
        command = command_part(line)
        if command in excluded:
            continue
        assert command in checks, f"README line not run by a test: {line!r}"
        proc = run_recipe(line, cwd, kubeconfig, env)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
        checks[command](proc)
    assert not set(excluded) - {command_part(c) for c in commands(recipe(key))}, \
        "an exclusion for a line the README no longer has"


# "First two commands"
FIRST_TWO_EXCLUDED = {
    "bash scripts/test.sh": "the whole suite, CI's own command (this test is part of it)",
    "bash scripts/sandbox.sh --workers": "run as written by tests/testbed/"
                                         "test_workers_sandbox.py",
}


def copy_of_the_repository(to: Path) -> Path:
    """This checkout's files as a clone has them (no caches, no sandbox, no git metadata)."""
    shutil.copytree(ROOT, to, ignore=shutil.ignore_patterns(
        ".git", ".sandbox", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        "*.egg-info", "build", "dist", ".venv"))
    return to


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_readme_first_two_commands(tmp_path: Path) -> None:
    """`bash scripts/sandbox.sh` as written, from a copy of the repository, on a Python whose
    installs go to a virtualenv of its own (the script's `pip install -e .` must not replace this
    machine's install of devscale); then with `--keep`."""
    repo = copy_of_the_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NAMESPACE", "METRICS_SERVER", "DEBUG", "KUBECONFIG", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    for line in commands(recipe("first-two")):
        if command_part(line) in FIRST_TWO_EXCLUDED:
            continue
        assert command_part(line) == "bash scripts/sandbox.sh", f"not run by a test: {line!r}"
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=840)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = proc.stdout
        # "installs devscale": the command is on PATH, and it is this copy's code
        assert (venv / "bin" / "devscale").is_file()
        where = subprocess.run(["python3", "-c", "import devtrip_scale; print("
                                "devtrip_scale.__file__)"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, check=True).stdout
        assert where.startswith(str(repo)), where
        # "runs `devscale check --debug` on it … scales it from 2 to 4 replicas and shows why"
        assert "$ devscale check --debug" in out
        [api] = [row for row in out.splitlines() if row.startswith("│ api ")]
        assert "2 → 4" in api and "scaled up" in api and "cpu asks for 4" in api, out
        debug = proc.stderr                  # the --debug trace goes to stderr
        assert "debug: requests in order" in debug
        assert "patch deployments/api/scale -n devtrip replicas=4" in debug
    keep_the_sandbox(repo, env)


def keep_the_sandbox(repo: Path, env: dict[str, str]) -> None:
    """"Add `--keep` to leave the servers running and try commands yourself": the commands it
    prints work in another shell, and Ctrl-C (SIGINT to the foreground group) stops it all."""
    with subprocess.Popen(["bash", "scripts/sandbox.sh", "--keep"], cwd=repo, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          start_new_session=True) as sandbox:
        try:
            assert sandbox.stdout is not None
            printed = []
            for line in sandbox.stdout:
                printed.append(line)
                if line.startswith("Prometheus: "):
                    break
            text = "".join(printed)
            assert "The sandbox keeps running (Ctrl-C stops it)" in text, text
            shell = text.split("In another shell:\n", 1)[1].split("\nPrometheus: ", 1)[0]
            tried = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], env=env,
                                   cwd=repo, capture_output=True, text=True, timeout=120)
            assert tried.returncode == 0, shell + tried.stdout + tried.stderr
            assert "│ api " in tried.stdout and "debug: requests in order" in tried.stderr
        finally:
            os.killpg(sandbox.pid, signal.SIGINT)
            sandbox.wait(timeout=60)
    left = subprocess.run(["pgrep", "-g", str(sandbox.pid)], capture_output=True, text=True)
    assert left.stdout == "", f"processes left running: {left.stdout}"


# "Using it"
USING_IT_EXCLUDED = {
    "pip install .": "would replace this machine's install of devscale; the tests run this "
                     "tree's code through a `devscale` shim on PATH (the first-two-commands "
                     "test installs it for real, into a virtualenv)",
    "devscale run -c devscale.yaml --interval 60s": "runs until stopped; tests/e2e/test_run.py "
                                                    "runs it against the bed",
}


@pytest.fixture
def devtrip_api(kube: Any, exporter: SyntheticExporter) -> Iterator[Cluster]:
    """Deployment `api` in namespace `devtrip` (the README's `-n devtrip`), with load; removed
    afterwards, since other tests use that namespace too."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    if "devtrip" not in [n.metadata.name for n in core.list_namespace().items]:
        core.create_namespace({"metadata": {"name": "devtrip"}})
    devtrip = Cluster(kube, "devtrip")
    devtrip.deployment("api", 2, labels={"app.kubernetes.io/part-of": "devtrip"})
    exporter.set_load("devtrip", "api", **LOAD)
    yield devtrip
    exporter.set_load("devtrip", "api", pods=0)
    client.AppsV1Api(kube).delete_namespaced_deployment("api", "devtrip")


def kinds(text: str) -> set[str]:
    return {d["kind"] for d in yaml.safe_load_all(text) if d}


@pytest.mark.integration
def test_readme_using_it(cluster: Cluster, devtrip_api: Cluster, exporter: SyntheticExporter,
                         prometheus: Prometheus, admin_kubeconfig: Path, root_crontab: None,
                         tmp_path: Path) -> None:
    """Every line of the synopsis, in order, in one directory: the starter config made by
    `config init`, pointed at the bed the way the README says the environment overrides it
    ($NAMESPACE, $METRICS_SERVER as host:port, $SLACK_WEBHOOK), `api` at 160 % memory."""
    ns = cluster.namespace
    cluster.deployment("api", 2, labels={"app.kubernetes.io/part-of": "devtrip"})
    exporter.set_load(ns, "api", **LOAD)
    shutil.copy(ROOT / "examples" / "day.csv", tmp_path / "load.csv")   # the reader's recording
    slack = SlackReceiver()
    env = {"NAMESPACE": ns, "METRICS_SERVER": prometheus.url.removeprefix("http://"),
           "SLACK_WEBHOOK": slack.url}
    settle()

    def init(proc: Any) -> None:
        text = (tmp_path / "devscale.yaml").read_text()
        assert text.startswith("# devscale") and "validate -c devscale.yaml" in text

    def dry_run(proc: Any) -> None:
        assert "2 → 4" in proc.stdout and cluster.replicas("api") == 2

    def scaled(proc: Any) -> None:
        assert cluster.replicas("api") == 4, proc.stdout

    def debug(proc: Any) -> None:
        assert "memory: 100 * sum by (deployment)" in proc.stdout + proc.stderr

    def as_json(proc: Any) -> None:
        doc = json.loads(proc.stdout)
        assert (doc["exitCode"], doc["namespace"]) == (0, ns)
        assert [d["name"] for d in doc["deployments"]] == ["api"]

    def other_namespace(proc: Any) -> None:
        assert "namespace devtrip" in proc.stdout and devtrip_api.replicas("api") == 4

    def simulated(proc: Any) -> None:
        assert "│ api " in proc.stdout and "devscale.yaml" in proc.stdout

    def status(proc: Any) -> None:
        # each check scaled `api` further (its pods stay at 160 %): status shows the last one
        [row] = [r for r in proc.stdout.splitlines() if r.startswith("│ api ")]
        assert f" → {cluster.replicas('api')} at 20" in row, proc.stdout

    def notified(proc: Any) -> None:
        # the checks above told Slack of their scaling too; the sample is the last message
        assert proc.stdout == "slack: sent\n"
        assert "devscale test message" in json.dumps(slack.requests[-1]["body"])

    def cron_installed(proc: Any) -> None:
        assert proc.stdout.startswith("installed:")
        assert f"namespace {ns}" in proc.stdout and str(admin_kubeconfig) in proc.stdout

    checks: dict[str, Callable[[Any], None]] = {
        "devscale config init devscale.yaml": init,
        "devscale config validate -c devscale.yaml":
            expect(lambda p: p.stdout.startswith("devscale.yaml: valid (1 target(s), 5 metric")),
        "devscale config validate -c devscale.yaml --online":
            expect(lambda p: "warning" not in (p.stdout + p.stderr).lower()),
        "devscale check -c devscale.yaml --dry-run": dry_run,
        "devscale check -c devscale.yaml": scaled,
        "devscale check -c devscale.yaml --debug": debug,
        "devscale check -c devscale.yaml -o json": as_json,
        "devscale check -c devscale.yaml -d api -n devtrip": other_namespace,
        "devscale simulate -c devscale.yaml --csv load.csv": simulated,
        "devscale status -c devscale.yaml": status,
        "devscale notify test -c devscale.yaml": notified,
        "devscale manifests cronjob -c devscale.yaml":
            expect(lambda p: kinds(p.stdout) >= {"CronJob", "ConfigMap", "Role", "Lease"}),
        "devscale manifests loop -c devscale.yaml":
            expect(lambda p: kinds(p.stdout) >= {"Deployment", "ConfigMap", "Role", "Lease"}),
        "devscale manifests hpa api":
            expect(lambda p: kinds(p.stdout) == {"HorizontalPodAutoscaler"}),
        "devscale manifests prometheus-rules":
            expect(lambda p: yaml.safe_load(p.stdout) == m.prometheus_rules()),
        "devscale manifests grafana-dashboard":
            expect(lambda p: json.loads(p.stdout)["uid"] == "devscale"),
        "devscale cron install -c devscale.yaml": cron_installed,
        "devscale cron show": expect(lambda p: "# devscale:" in p.stdout),
        "devscale cron uninstall -c devscale.yaml":
            expect(lambda p: p.stdout.startswith("removed 1 entry")),
    }
    try:
        run_lines("using-it", USING_IT_EXCLUDED, checks, tmp_path, admin_kubeconfig, env)
    finally:
        slack.stop()


def expect(holds: Callable[[Any], bool]) -> Callable[[Any], None]:
    """A check that `holds` of a line's finished process, showing its output when not."""
    def check(proc: Any) -> None:
        assert holds(proc), proc.stdout + proc.stderr
    return check


# "Backtesting a policy: `devscale simulate`"
@pytest.mark.integration
def test_readme_simulate_recipes(cluster: Cluster, exporter: SyntheticExporter,
                                 prometheus: Prometheus, admin_kubeconfig: Path,
                                 tmp_path: Path) -> None:
    """The CSV recipe in a copy of the repository's config/ and examples/ (day.png lands there);
    the --from-prometheus one with a devscale.yaml on the bed's Prometheus, a week asked for."""
    for folder in ("config", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    ns = cluster.namespace
    write_config(tmp_path / "devscale.yaml", ns, prometheus.url, [MEMORY],
                 [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    exporter.set_load(ns, "api", **LOAD)
    settle()

    def csv(proc: Any) -> None:
        assert (tmp_path / "day.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "devtrip-fast-scaledown.yaml" in proc.stdout and "wrote day.png" in proc.stderr

    def from_prometheus(proc: Any) -> None:
        [row] = [r for r in proc.stdout.splitlines() if r.startswith("│ api ")]
        assert "devscale.yaml" in row, proc.stdout

    checks: dict[str, Callable[[Any], None]] = {
        "devscale simulate -c config/devtrip.yaml --csv examples/day.csv --compare "
        "examples/devtrip-fast-scaledown.yaml --plot day.png": csv,
        "devscale simulate -c devscale.yaml --from-prometheus --since 7d --step 30s "
        "--interval 2m": from_prometheus,
    }
    run_lines("simulate", {}, checks, tmp_path, admin_kubeconfig, {})


# "What devscale last did: `devscale status`"
@pytest.fixture
def staging(kube: Any, admin_kubeconfig: Path, tmp_path: Path) -> Iterator[Cluster]:
    """Namespace `staging` with a Deployment `api`, and ~/.kube/staging: the bed's kubeconfig
    whose context is named `staging` (the README's third status recipe)."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    if "staging" not in [n.metadata.name for n in core.list_namespace().items]:
        core.create_namespace({"metadata": {"name": "staging"}})
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    for context in doc["contexts"]:
        context["name"] = "staging"
    doc["current-context"] = "staging"
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "staging").write_text(yaml.safe_dump(doc))
    cluster = Cluster(kube, "staging")
    cluster.deployment("api", 2)
    yield cluster
    client.AppsV1Api(kube).delete_namespaced_deployment("api", "staging")


@pytest.mark.integration
def test_readme_status_recipes(cluster: Cluster, staging: Cluster, exporter: SyntheticExporter,
                               prometheus: Prometheus, admin_kubeconfig: Path,
                               tmp_path: Path) -> None:
    """A real check scales `api` 2 → 4 in the test's namespace and in `staging`; then each
    status recipe, as written, shows that scale."""
    ns = cluster.namespace
    cluster.deployment("api", 2)
    for namespace in (ns, "staging"):
        exporter.set_load(namespace, "api", **LOAD)
    write_config(tmp_path / "devscale.yaml", ns, prometheus.url, [MEMORY],
                 [{"deployment": "api"}], minReplicas=2, maxReplicas=10)
    settle()
    for namespace in (ns, "staging"):
        checked = run_recipe(f"devscale check -c devscale.yaml -n {namespace}", tmp_path,
                             admin_kubeconfig)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert cluster.replicas("api") == staging.replicas("api") == 4
    exporter.set_load("staging", "api", pods=0)

    def table(namespace: str) -> Callable[[Any], None]:
        def check(proc: Any) -> None:
            assert f"devscale status — namespace {namespace}" in proc.stdout
            [row] = [r for r in proc.stdout.splitlines() if r.startswith("│ api ")]
            assert "2 → 4 at 20" in row and "2/10" in row, proc.stdout
        return check

    def as_json(proc: Any) -> None:
        doc = json.loads(proc.stdout)
        [api] = doc["deployments"]
        assert (doc["exitCode"], api["name"], api["replicas"]) == (0, "api", 4)
        assert (api["lastScale"]["from"], api["lastScale"]["to"]) == (2, 4)

    checks: dict[str, Callable[[Any], None]] = {
        "devscale status -c devscale.yaml": table(ns),
        "devscale status -c devscale.yaml -d api -o json": as_json,
        "devscale status -c devscale.yaml -n staging --kubeconfig ~/.kube/staging "
        "--context staging": table("staging"),
    }
    run_lines("status", {}, checks, tmp_path, admin_kubeconfig, {})


# "Development"
DEVELOPMENT_EXCLUDED = {
    "bash scripts/setup.sh": "installs this checkout into the machine's Python (pip -e); CI's "
                             "scripts/test.sh runs it first, and test_readme_first_two_commands "
                             "runs it (through sandbox.sh) into a virtualenv",
    "python3 -m pytest": "the whole suite is CI itself (scripts/test.sh), this test included",
}


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_readme_development_recipes(tmp_path: Path) -> None:
    """The fast tier and the lint line, as written, from the repository's root: both pass."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
           "HOME": os.environ.get("HOME", str(tmp_path))}
    for line in commands(recipe("development")):
        command = command_part(line)
        if command in DEVELOPMENT_EXCLUDED:
            continue
        assert command in ('python3 -m pytest -m "not integration"',
                           "python3 -m ruff check devtrip_scale testbed tests bench examples "
                           "&& python3 -m mypy"), f"README line not run by a test: {line!r}"
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=840)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        if "pytest" in command:
            assert " passed" in proc.stdout and " failed" not in proc.stdout
        else:
            assert "All checks passed!" in proc.stdout and "Success: no issues" in proc.stdout
