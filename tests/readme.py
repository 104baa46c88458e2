"""The README's `sh` blocks, and how the tests run them as a reader would: each block found by its
section and a fragment of its text, every block registered with the test that runs it, and a
shell in which `devscale` is this tree's code, `kubectl` the real one and $KUBECONFIG the test
bed's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


@dataclass(frozen=True)
class Recipe:
    """One `sh` block of the README: the section it is in, a fragment only it has, and the test
    (`path::function`) that runs it."""

    section: str
    fragment: str
    test: str


RECIPES = {
    "first-two": Recipe("First two commands", "bash scripts/sandbox.sh",
                        "tests/e2e/test_readme.py::test_readme_first_two_commands"),
    "using-it": Recipe("Using it", "devscale config init devscale.yaml",
                       "tests/e2e/test_readme.py::test_readme_using_it"),
    "cron": Recipe("Deploy", "devscale cron install",
                   "tests/e2e/test_deploy.py::test_readme_cron_recipe"),
    "kustomize": Recipe("Deploy", "kubectl apply -k",
                        "tests/e2e/test_deploy.py::test_readme_kustomize_recipe"),
    "cronjob": Recipe("Deploy", "devscale manifests cronjob -c devscale.yaml",
                      "tests/e2e/test_deploy.py::test_readme_manifests_recipes"),
    "loop": Recipe("Deploy", "devscale manifests loop",
                   "tests/e2e/test_deploy.py::test_readme_manifests_recipes"),
    "fleet": Recipe("Deploy", "devscale manifests cronjob -c fleet.yaml",
                    "tests/e2e/test_fleet.py::test_readme_platform_team_recipe"),
    "rules": Recipe("Deploy", "devscale manifests prometheus-rules",
                    "tests/e2e/test_deploy.py::test_readme_rules_recipe"),
    "simulate": Recipe("Backtesting a policy: `devscale simulate`", "--csv examples/day.csv",
                       "tests/e2e/test_readme.py::test_readme_simulate_recipes"),
    "status": Recipe("What devscale last did: `devscale status`", "devscale status",
                     "tests/e2e/test_readme.py::test_readme_status_recipes"),
    "workers": Recipe("Event-driven workers", "devscale manifests workers",
                      "tests/workers/test_readme.py::test_the_readme_recipe_runs"),
    "pipelines": Recipe("Pipelines and the gRPC API", "devscale pipeline run examples/",
                        "tests/workers/test_readme.py::test_the_pipeline_recipe_runs"),
    "development": Recipe("Development", "python3 -m ruff check",
                          "tests/e2e/test_readme.py::test_readme_development_recipes"),
}


def readme_sections() -> dict[str, list[str]]:
    """Each `## ` section of README.md (its `###` subsections included) → its `sh` blocks."""
    text = (ROOT / "README.md").read_text()
    found: dict[str, list[str]] = {}
    for part in text.split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        found[title.strip()] = SH_BLOCK.findall(body)
    return found


def readme_blocks(section: str) -> list[str]:
    return readme_sections()[section]


def recipe(key: str) -> str:
    """The text of the README's block registered as `key` (exactly one block has it)."""
    wanted = RECIPES[key]
    [block] = [b for b in readme_blocks(wanted.section) if wanted.fragment in b]
    return block


def commands(block: str) -> list[str]:
    """A block's commands as bash reads them: continued lines joined, blank lines left out."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def command_part(line: str) -> str:
    """A README line without its trailing `# comment`, spaces squeezed."""
    return " ".join(line.split("  #", 1)[0].split())


def devscale_shim(where: Path) -> Path:
    """A directory with a `devscale` command that runs this tree's code (the console script on
    PATH may belong to another checkout)."""
    bin_dir = where / ".bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "devscale"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m devtrip_scale "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def run_recipe(block: str, cwd: Path, kubeconfig: Path, env: dict[str, str] | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A README block in bash (-e, pipefail) as a user would type it: `devscale` is this tree's,
    `kubectl` is the real one, $KUBECONFIG points at the test bed; `env` adds to that."""
    full_env = {"PATH": f"{devscale_shim(cwd)}:/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd),
                "KUBECONFIG": str(kubeconfig), "DEVSCALE_STATE_DIR": str(cwd / "state"),
                **(env or {})}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def root_crontab(crontab_turn: None) -> Iterator[None]:
    """A README recipe edits the crontab of whoever runs it (root here): put back what was there
    before."""
    if os.geteuid() != 0:   # a developer's own run may skip it; CI never may
        refuse = pytest.fail if os.environ.get("CI") else pytest.skip
        refuse("needs root: the recipe edits the running user's crontab; CI runs as root")
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    yield
    if before.returncode == 0:
        subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True, check=False)
