"""The README's worker recipe, run line by line against the test bed: the manifests applied
with kubectl, the server, a scale_up of 3 added with redis-cli, `workers status`, and the result
read back with redis-cli — the seed's flow as the README tells it."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from testbed.net import free_port, wait_until
from tests import readme
from tests.conftest import ROOT
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration


def recipe() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### Recipe: the seed's flow", 1)[1].split("```sh\n", 1)[1]
    return [line.split("  #")[0].strip() for line in block.split("```", 1)[0].splitlines()
            if line.strip()]


def test_the_recipe_lines_are_what_this_test_runs() -> None:
    lines = recipe()
    assert [line.split()[0] for line in lines] == ["devscale", "devscale", "redis-cli",
                                                  "devscale", "redis-cli"]
    assert lines[1].endswith("&")


def test_the_readme_recipe_runs(workers: Workers, admin_kubeconfig: Path) -> None:
    # long enough for `workers status` (a Python process of its own) to see the pods running
    config = workers.configure(run_seconds=8)
    doc = yaml.safe_load(config.read_text())
    subs = {"redis://redis:6379/0": workers.redis.url, "devscale:requests": workers.stream,
            "devscale:results": doc["redis"]["results_stream"], "workers.yaml": str(config)}
    env = {**os.environ, "KUBECONFIG": str(admin_kubeconfig)}

    def shell(line: str) -> str:
        for old, new in subs.items():
            line = line.replace(old, new)
        line = re.sub(r"(^|\| )devscale ", rf"\g<1>{sys.executable} -m devtrip_scale ", line)
        r = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=60)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    apply, serve, xadd, status, xrange = recipe()
    assert "deployment.apps/devscale-workers" in shell(apply)
    args = shlex.split(serve.rstrip("& "))
    assert args[1:4] == ["workers", "serve", "-c"] and "--listen" in args
    workers.start()                   # the serve line, as a process the test can stop
    entry = shell(xadd).strip()
    pods = workers.wait_pods(3, "build-42")
    workers.log_pods(pods, lambda name: [f"{name}: built"])
    wait_until(lambda: "Running" in shell(status) or "Succeeded" in shell(status),
               "status shows the pods", timeout=20)
    workers.wait_results(1, timeout=60)
    out = shell(xrange)
    assert entry in out and "succeeded" in out and "build-42" in out


def lines_of(block: str) -> list[str]:
    return [readme.command_part(c) for c in readme.commands(block)]


def test_the_pipeline_recipe_lines_are_what_its_test_runs() -> None:
    lines = lines_of(readme.recipe("pipelines"))
    assert [line.split()[0] for line in lines] == ["openssl", "export", "devscale", "devscale",
                                                  "devscale", "devscale"]
    assert lines[2].endswith("&") and "--api-listen" in lines[2]


def test_the_pipeline_recipe_runs(workers: Workers, tmp_path: Path) -> None:
    """The README's pipeline recipe line by line: a self-signed certificate and a token made
    with openssl, the server with its gRPC API, examples/pipeline.yaml run to the end (its pods
    given a KWOK run time, the only change to it), its status and its logs."""
    from testbed import kwok

    certs, token_line, serve, run, status, logs = lines_of(readme.recipe("pipelines"))
    port = free_port()
    example = yaml.safe_load((ROOT / "examples" / "pipeline.yaml").read_text())
    example["defaults"].setdefault("annotations", {})[kwok.RUN_SECONDS] = "4"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(example, sort_keys=False))
    config = workers.configure(run_seconds=2, api={"tls": {"cert_file": "api.pem",
                                                           "key_file": "api.key"}})
    subs = {"workers.yaml": str(config), "examples/pipeline.yaml": str(pipeline),
            ":50051": f":{port}"}
    env = {**os.environ}

    def shell(line: str, timeout: float = 60) -> str:
        for old, new in subs.items():
            line = line.replace(old, new)
        line = re.sub(r"(^|\| )devscale ", rf"\g<1>{sys.executable} -m devtrip_scale ", line)
        r = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env,
                           cwd=workers.workdir, timeout=timeout)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    shell(certs)
    assert (workers.workdir / "api.pem").is_file() and (workers.workdir / "api.key").is_file()
    env["DEVSCALE_API_TOKEN"] = token = shell(f'{token_line} && echo "$DEVSCALE_API_TOKEN"').strip()
    assert len(token) == 48
    args = shlex.split(serve.rstrip("& "))
    assert args[1:4] == ["workers", "serve", "-c"] and args[5] == "--api-listen"
    workers.start(env={"DEVSCALE_API_TOKEN": token}, args=["--api-listen", f"127.0.0.1:{port}"])

    writing = threading.Event()

    def write_logs() -> None:        # each stage's pods say something while they run
        seen: set[str] = set()
        while not writing.is_set():
            for pod in workers.pods():
                name = pod.metadata.name
                if name not in seen and pod.status.phase == "Running":
                    seen.add(name)
                    with contextlib.suppress(Exception):   # it may end before KWOK serves it
                        workers.cluster.pod_log(name, [f"{name}: done"], container="worker")
            time.sleep(0.2)

    writer = threading.Thread(target=write_logs, daemon=True)
    writer.start()
    try:
        out = shell(run, timeout=240)
    finally:
        writing.set()
        writer.join(30)
    print(out)
    for stage in ("checkout", "build", "unit-tests", "lint", "package", "deploy"):
        assert re.search(rf"{stage}\b.*succeeded", out), (stage, out)
    shown = shell(status)
    print(shown)
    assert "ci-1" in shown and "succeeded" in shown
    lines = shell(logs).splitlines()
    print("\n".join(lines))
    assert any(": done" in line for line in lines), lines
