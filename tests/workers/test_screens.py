"""What a person sees of the worker half's client (issue 25), against `devscale workers serve`
as a process with its gRPC API over real TLS, real Redis and the whole-cluster test bed (KWOK
pods): an empty log is said with the API's reason; the live view of `pipeline run` in a real
terminal (tmux at 100×30): live, after Ctrl-C, and the final screen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.net import free_port
from tests.conftest import ROOT
from tests.workers.conftest import Workers
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
    run = api.run_pipeline(path, "--build-id", "quiet-1", "--no-logs", "-o", "json")
    assert run.returncode == 0, run.stderr
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
    import json

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
