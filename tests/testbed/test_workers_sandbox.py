"""The worker sandbox as the README's first section names it (`bash scripts/sandbox.sh --workers`),
run as written from a copy of the repository with a virtualenv of its own: the seed's scale_up of
3 pods succeeds (status while they run, the pods coming and going, the result on the results
stream, their kept logs), examples/pipeline.yaml succeeds with its logs, and nothing is left
running; then with `--keep`, the commands it prints work when pasted, and Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_readme import copy_of_the_repository
from tests.readme import command_part, commands, recipe

pytestmark = pytest.mark.integration

LINE = "bash scripts/sandbox.sh --workers"
STAGES = ("checkout", "build", "unit-tests", "lint", "package", "deploy")


def the_line() -> str:
    """The README's line, as the first section has it."""
    [line] = [c for c in commands(recipe("first-two")) if command_part(c) == LINE]
    return command_part(line)


def environment(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the repository and an environment whose installs go to a virtualenv (the
    script's `pip install -e .` must not replace this machine's install of devscale)."""
    repo = copy_of_the_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NAMESPACE", "DEBUG", "KUBECONFIG", "VIRTUAL_ENV", "PYTHONPATH",
                        "DEVSCALE_SERVER", "DEVSCALE_API_TOKEN", "DEVSCALE_WORKERS_CONFIG")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    return repo, env


def left_running(group: int) -> str:
    return subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout


def check_the_run(out: str) -> None:
    """What the sandbox promises: the request, the pods, the result, the pipeline."""
    assert re.search(r"\$ redis-cli -u redis://127\.0\.0\.1:\d+/0 XADD devscale:requests '\*' "
                     r"type scale_up pod_count 3 task_id build-42\n", out), out
    status = out.split("$ devscale workers status -c ", 2)[2].split("\n\n", 1)[0]
    assert len(re.findall(r"w-build-42-\d-0.*Running", status)) == 3, status
    for pod in ("w-build-42-0-0", "w-build-42-1-0", "w-build-42-2-0"):
        assert re.search(rf"{pod}\s+Pending\n(.*\n)*.*{pod}\s+Running\n(.*\n)*.*{pod}\s+"
                         rf"Succeeded\n(.*\n)*.*{pod}\s+deleted\n", out), (pod, out)
    result = out.split("XRANGE devscale:results - +\n", 1)[1]
    assert "task_id\nbuild-42\noutcome\nsucceeded\n" in result, result
    assert "pods_succeeded\n3\n" in result, result
    assert "task build-42, worker 2: done" in out            # the kept log of the task
    run = out.split("$ devscale pipeline run ", 1)[1].split("\n$ ", 1)[0]
    for stage in STAGES:
        assert re.search(rf"✓ {stage}\s+succeeded", run), (stage, run)
    assert "build ci-1 succeeded" in run
    # the live view's logs, as they came (not a warning that they stopped)
    assert re.search(r"\d\d:\d\d:\d\d checkout/w-ci-1-checkout-\w+-0-0 \| stage checkout, "
                     r"worker 0: done\n", run), run
    assert "the logs stopped" not in out
    logs = out.split("$ devscale pipeline logs ci-1", 1)[1]
    assert "unit-tests/w-ci-1-unit-tests-" in logs and "stage unit-tests, worker 3: done" in logs


@pytest.mark.timeout(900)
def test_the_worker_sandbox_runs_as_the_readme_says(tmp_path: Path) -> None:
    repo, env = environment(tmp_path)
    start = time.monotonic()
    with subprocess.Popen(["bash", "-euo", "pipefail", "-c", the_line()], cwd=repo, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as sandbox:
        out, err = sandbox.communicate(timeout=840)
    print(f"the sandbox script took {time.monotonic() - start:.0f}s (setup included)")
    print(out)
    assert sandbox.returncode == 0, out[-3000:] + err[-3000:]
    check_the_run(out)
    assert left_running(sandbox.pid) == "", "processes left running"
    keep_the_worker_sandbox(repo, env)


def keep_the_worker_sandbox(repo: Path, env: dict[str, str]) -> None:
    """`--keep`: the commands it prints work in another shell (a request by redis-cli and one by
    `workers submit`, the status, a second pipeline), and Ctrl-C (SIGINT to the foreground
    group) stops everything it started."""
    with subprocess.Popen(["bash", "scripts/sandbox.sh", "--workers", "--keep"], cwd=repo,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          start_new_session=True) as sandbox:
        try:
            assert sandbox.stdout is not None
            printed = []
            for line in sandbox.stdout:
                printed.append(line)
                if line.startswith("The server's log: "):
                    break
            text = "".join(printed)
            assert "The worker sandbox keeps running (Ctrl-C stops it)" in text, text
            check_the_run(text)
            block = text.split("In another shell:\n", 1)[1].split("\nThe server's log: ", 1)[0]
            tried = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env,
                                   cwd=repo, capture_output=True, text=True, timeout=180)
            print(block, tried.stdout, tried.stderr, sep="\n")
            assert tried.returncode == 0, block + tried.stdout + tried.stderr
            assert "build ci-2 succeeded" in tried.stdout
            assert re.search(r"task try-2: 2 pod\(s\)", tried.stdout), tried.stdout
            assert re.search(r"task_id\ntry-1\noutcome\nsucceeded\n", tried.stdout), tried.stdout
        finally:
            os.killpg(sandbox.pid, signal.SIGINT)
            sandbox.wait(timeout=90)
    assert left_running(sandbox.pid) == "", "processes left running"
