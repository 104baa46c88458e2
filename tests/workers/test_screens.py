"""What a person sees of the worker half's client (issue 25), against `devscale workers serve`
as a process with its gRPC API over real TLS, real Redis and the whole-cluster test bed (KWOK
pods): an empty log is said with the API's reason; the live view of `pipeline run` in a real
terminal (tmux at 100×30): live, after Ctrl-C, and the final screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from testbed.net import free_port
from tests.conftest import ROOT
from tests.workers.conftest import Workers
from tests.workers.test_client import printed_commands
from tests.workers.test_e2e import TOKEN, Api, pipeline_file, stage, tls_files

pytestmark = pytest.mark.integration


@pytest.fixture
def served(workers: Workers, tmp_path: Path) -> Api:
    """`devscale workers serve` with its API on TLS (as test_e2e's `api`)."""
    port = free_port()
    workers.configure(run_seconds=2, api={"enabled": True, "listen": f"127.0.0.1:{port}",
                                          "tls": tls_files(tmp_path)})
    server = workers.start(env={"DEVSCALE_API_TOKEN": TOKEN})
    return Api(workers, server, f"localhost:{port}", tmp_path / "ca.pem")


def devscale(api: Api, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtrip_scale", *args, "--server", api.address, "--ca",
         str(api.ca)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "DEVSCALE_API_TOKEN": TOKEN})


def test_the_logs_of_a_build_whose_pods_wrote_nothing_say_so_and_why(
        served: Api, tmp_path: Path) -> None:
    api = served
    assert "note: worker: is the pod template of scale requests" in api.server.output()
    path = pipeline_file(tmp_path / "quiet.yaml", [stage("quiet", 1, workers=2)])
    run = api.run_pipeline(path, "--build-id", "quiet-1", "-o", "json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["warnings"] == [          # `run` says it too, in one line
        '2 pods wrote no log line: HTTP 400 no logs found for container "worker"'], result
    for args in (["quiet-1"], ["quiet-1", "--follow"], ["quiet-1", "--stage", "quiet"]):
        logs = devscale(api, "pipeline", "logs", *args)
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout == ""
        said = logs.stderr.splitlines()
        assert said[0].startswith("devscale: build quiet-1") and \
            said[0].endswith("has no log lines:"), logs.stderr
        assert len(said) == 3, logs.stderr          # one line per pod, with the API's reason
        for line in said[1:]:
            assert line.startswith("  w-quiet-1-quiet-") and \
                'HTTP 400 no logs found for container "worker"' in line, line


def test_a_stage_whose_pod_cannot_be_scheduled_says_why_in_the_progress(
        served: Api, tmp_path: Path) -> None:
    """No node matches the stage's node_selector: the scheduler leaves its pod Pending and
    says why; after a few seconds the progress stream carries that, with the pod's name."""
    path = pipeline_file(tmp_path / "stuck.yaml", [stage(
        "stuck", 1, node_selector={"devscale.test/pool": "none-such"}, timeout_seconds=12)])
    run = served.run_pipeline(path, "--build-id", "stuck-1", "--no-logs", "-o", "json")
    assert run.returncode == 8, run.stderr           # it timed out, as it should
    said = [d for d in map(json.loads, run.stdout.splitlines())
            if d["type"] == "progress" and "waiting" in d["message"]]
    assert said, run.stdout
    first = said[0]
    assert (first["stage"], first["workerIndex"]) == ("stuck", 0)
    assert first["pod"].startswith("w-stuck-1-stuck-") and first["pod"].endswith("-0-0")
    assert first["message"].startswith("worker 0 waiting ")
    assert "Pending: Unschedulable: 0/" in first["message"]
    assert "node affinity/selector" in first["message"]


class Tmux:
    """A real terminal: a tmux server of its own (socket), one session of `cols`×`rows` running
    bash; what a person sees is `capture-pane`."""

    def __init__(self, where: Path, cols: int, rows: int, env: dict[str, str]) -> None:
        import shutil
        import uuid

        assert shutil.which("tmux"), "tmux is needed (scripts/setup.sh installs it)"
        self.socket = f"devscale-test-{uuid.uuid4().hex[:8]}"
        extra = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", str(cols), "-y", str(rows),
                  "-c", str(where), *extra, "bash", "--norc", "--noprofile")
        self.tmux("set-option", "-g", "status", "off")
        self.wait(lambda s: bool(s) and s[0] == "$", "the shell's prompt", 20)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=True, timeout=20).stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-l", line)
        self.tmux("send-keys", "Enter")

    def key(self, name: str) -> None:
        self.tmux("send-keys", name)

    def screen(self) -> list[str]:
        """The visible screen, line by line (trailing blanks dropped)."""
        return [line.rstrip() for line in self.tmux("capture-pane", "-p").splitlines()]

    def joined(self) -> str:
        """The screen and its scrollback with wrapped lines joined: what was printed."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200")

    def wait(self, check: Callable[[list[str]], bool], what: str, timeout: float = 90
             ) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{what}: not on the screen within {timeout:g}s:\n"
                             + "\n".join(self.screen()))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=20)


def test_pipeline_run_in_a_100x30_terminal_live_ctrl_c_and_final(
        served: Api, tmp_path: Path) -> None:
    """What a person sees of `pipeline run` in a real terminal: the live tree with the right
    worker counts while four pods run, Ctrl-C's follow-again lines — pasted into the same
    shell, they work — and the final screen."""
    path = pipeline_file(tmp_path / "screens.yaml", [
        stage("checkout", 1), stage("unit", 10, ("checkout",), workers=4),
        stage("package", 1, ("unit",))])
    doc = yaml.safe_load(path.read_text())
    doc["name"] = "screens"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert served.ca == tmp_path / "ca.pem"      # the shell's directory: `--ca ca.pem`
    term = Tmux(tmp_path, 100, 30, {"DEVSCALE_API_TOKEN": TOKEN, "PS1": "$ ",
                                    "PYTHONPATH": str(ROOT)})
    try:
        term.type(f"devscale pipeline run screens.yaml --server {served.address} --ca ca.pem "
                  "--build-id screen-1")
        live = term.wait(lambda s: any("4 running" in line for line in s),
                         "four unit workers running")
        text = "\n".join(live)
        top = next(i for i, line in enumerate(live) if line.startswith("▶ build screen-1"))
        assert live[top].startswith("▶ build screen-1  running  "), text
        assert live[top + 1].startswith("├── ✓ checkout  succeeded  "), text
        assert live[top + 2].startswith(
            "├── ▶ unit  running  0/4 workers succeeded, 4 running  "), text
        assert live[top + 3].startswith("└── · package  waiting  needs unit"), text
        assert "warning" not in text      # the logs start once the build exists

        term.key("C-c")
        term.wait(lambda s: "$" in s[1:], "the prompt again")
        said = term.joined()
        assert "devscale: detached from build screen-1; it goes on on the server." in said
        assert all(len(line) <= 80 for line in said.splitlines()[1:]), said
        hints = printed_commands(said)
        assert hints["follow it again"] == (
            "devscale pipeline run screens.yaml --build-id screen-1 \\\n"
            f"      --server {served.address} --ca ca.pem --token-env DEVSCALE_API_TOKEN")
        assert TOKEN not in said

        term.tmux("clear-history")
        term.type("clear")
        for line in hints["follow it again"].splitlines():   # pasted as printed
            term.type(line)
        final = term.wait(lambda s: any(line == "build screen-1 succeeded" for line in s),
                          "the build's end")
        text = "\n".join(final)
        top = next(i for i, line in enumerate(final) if line.startswith("✓ build screen-1"))
        assert final[top].startswith("✓ build screen-1  succeeded  "), text
        assert final[top + 1].startswith("├── ✓ checkout  succeeded  "), text
        assert final[top + 2].startswith("├── ✓ unit  succeeded  4/4 workers succeeded  "), text
        assert final[top + 3].startswith("└── ✓ package  succeeded  "), text
        assert final[top + 4] == 'devscale: warning: 6 pods wrote no log line: HTTP 400 no ' \
            'logs found for container "worker"', text        # KWOK's pods here write nothing
        assert final[top + 5] == "build screen-1 succeeded", text
        print("\n".join(live), "\n", said, "\n", text, sep="")
    finally:
        term.close()


def test_a_stuck_stage_shows_its_pods_phase_and_reason_on_the_live_screen(
        served: Api, tmp_path: Path) -> None:
    pipeline_file(tmp_path / "stuck.yaml", [stage(
        "stuck", 1, node_selector={"devscale.test/pool": "none-such"}, timeout_seconds=15)])
    term = Tmux(tmp_path, 100, 30, {"DEVSCALE_API_TOKEN": TOKEN, "PS1": "$ ",
                                    "PYTHONPATH": str(ROOT)})
    try:
        term.type(f"devscale pipeline run stuck.yaml --server {served.address} --ca ca.pem "
                  "--build-id stuck-2")
        live = term.wait(lambda s: any("Unschedulable" in line for line in s),
                         "the stuck stage's reason")
        text = "\n".join(live)
        line = next(line for line in live if line.startswith("└── ▶ stuck  running  "))
        assert "— worker 0 waiting " in line and "s: Pending: Unschedulable: 0/" in line, text
        final = term.wait(lambda s: any(x.startswith("devscale: build stuck-2 failed")
                                        for x in s), "the build's end")
        assert any(x.startswith("└── ✗ stuck  failed  ") and "timed out after 15s" in x
                   for x in final), "\n".join(final)
    finally:
        term.close()
