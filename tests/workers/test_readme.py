"""The README's worker recipe, run line by line against the test bed: the manifests applied
with kubectl, the server, a scale_up of 3 added with redis-cli, `workers status`, and the result
read back with redis-cli — the seed's flow as the README tells it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.net import wait_until
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
    config = workers.configure(run_seconds=2)
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
