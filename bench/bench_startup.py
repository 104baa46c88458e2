"""Cold start of the command line: `devscale --help`, `devscale check --help` and
`devscale config validate` against `python -c pass`, each a fresh process, median of --repeat
runs; goals ≤ 3×, ≤ 4× and ≤ 4×. Wall time, and the CPU time the process used (on a machine
shared with other work, the CPU time is what the command itself costs).

    python bench/bench_startup.py [--repeat 15] [--no-bytecode] [--before DIR] [--steps]

Bytecode is cached as an installed package has it (pip compiles it at install time): each
command runs once untimed first, with PYTHONDONTWRITEBYTECODE taken out of its environment.
`--no-bytecode` keeps it, so every run compiles devtrip_scale from source. Two more rows show
Typer's own floor: a minimal Typer app of one command with one option, `--help` on the app and
on its command (Typer 0.29 coerces the group's unset options through pydantic, which it imports
on the first subcommand, whatever the command does), and the same with devscale's own group
class (`cli._common.Group`, whose unset `--help` and completion flags need no pydantic). One
more is the floor of `config validate`: a minimal Typer command that reads a one-key YAML file
into a one-field pydantic model — Typer, PyYAML and pydantic's first model, and nothing else —
and the same command validating `config/devtrip.yaml` with devscale's own config models
(`scaling.config.Settings`): what validating devscale's schema with pydantic costs, before any
of the command's own work.

`--steps` adds the floor's parts one by one (`python -c`: import typer; then pydantic's
BaseModel and TypeAdapter; then yaml; then one model defined and validated).

`--before DIR` adds the three devscale commands run from another tree (a checkout of an earlier
commit, `git archive COMMIT | tar -x -C DIR`) with PYTHONPATH=DIR, in the same rounds: the
"before" column measured under the same load as the "after".
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MINIMAL_TYPER = '''
import typer
app = typer.Typer(rich_markup_mode=None, add_completion=True)
@app.callback()
def root(debug: bool = False) -> None:
    """Root."""
@app.command()
def sub(name: str = "x") -> None:
    """Sub."""
app(prog_name="minimal")
'''

# The same app, its groups made by devscale's Group (imported from the tree under test).
MINIMAL_GROUP = MINIMAL_TYPER.replace(
    "import typer\n", "import typer\nfrom devtrip_scale.cli._common import Group\n").replace(
    "add_completion=True)", "add_completion=True, cls=Group)")

# The floor of `config validate`: Typer, a YAML file, one pydantic model validated.
MINIMAL_LOAD = '''
from pathlib import Path
import typer
import yaml
from pydantic import BaseModel
app = typer.Typer(rich_markup_mode=None, add_completion=True)
class Config(BaseModel):
    namespace: str
@app.callback()
def root(debug: bool = False) -> None:
    """Root."""
@app.command()
def validate(config: Path = Path("minimal.yaml")) -> None:
    """Validate."""
    print(Config.model_validate(yaml.safe_load(config.read_text())))
app(prog_name="minimal")
'''

# The same command, validating devscale's schema: the config models `config validate` builds.
SCHEMA_LOAD = MINIMAL_LOAD.replace(
    "from pydantic import BaseModel\n", "from devtrip_scale.scaling.config import Settings\n"
).replace("class Config(BaseModel):\n    namespace: str\n", "").replace(
    "print(Config.model_validate(", "print(Settings.model_validate(")


DEVSCALE = {
    "devscale --help": ["--help"],
    "devscale check --help": ["check", "--help"],
    "devscale config validate": ["config", "validate", "-c", "config/devtrip.yaml"],
}


STEPS = {
    "step: import typer": "import typer",
    "step: + pydantic BaseModel, TypeAdapter": "import typer\nfrom pydantic import BaseModel, "
                                               "TypeAdapter",
    "step: + yaml": "import typer, yaml\nfrom pydantic import BaseModel, TypeAdapter",
    "step: + one model validated": "import typer, yaml\nfrom pydantic import BaseModel, "
                                   "TypeAdapter\nclass M(BaseModel):\n    a: int = 1\nM(a=2)",
}


def cases(scripts: Path, before: Path | None, steps: bool = False
          ) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each row: its command line and what it adds to the environment (CWD: where it runs)."""
    python = sys.executable
    rows: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass (baseline)": ([python, "-c", "pass"], {})}
    for label, args in DEVSCALE.items():
        rows[label] = ([python, "-m", "devtrip_scale", *args], {})
        if before is not None:
            # `python -m` puts the working directory first on sys.path: run it in DIR.
            rows[f"{label} (before)"] = ([python, "-m", "devtrip_scale", *args],
                                         {"PYTHONPATH": str(before), "CWD": str(before)})
    typer_app, group_app = str(scripts / "minimal_typer.py"), str(scripts / "minimal_group.py")
    rows |= {
        "minimal Typer app --help": ([python, typer_app, "--help"], {}),
        "minimal Typer sub --help": ([python, typer_app, "sub", "--help"], {}),
        "same, devscale's Group": ([python, group_app, "sub", "--help"], {}),
        "floor: Typer+YAML+1 model": ([python, str(scripts / "minimal_load.py"), "validate",
                                       "--config", str(scripts / "minimal.yaml")], {}),
        "floor: Typer+YAML+devscale's models": (
            [python, str(scripts / "schema_load.py"), "validate", "--config",
             str(ROOT / "config" / "devtrip.yaml")], {}),
    }
    if steps:
        rows |= {label: ([python, "-c", code], {}) for label, code in STEPS.items()}
    return rows


def run(command: list[str], env: dict[str, str], extra: dict[str, str]) -> None:
    extra = dict(extra)
    cwd = extra.pop("CWD", None)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env | extra, cwd=cwd)


def medians(commands: dict[str, tuple[list[str], dict[str, str]]], repeat: int,
            env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Each command once untimed, then `repeat` rounds of every command in turn: a load that
    comes and goes on a shared machine falls on every command alike. Per command, the median
    wall time and the median CPU time (user + system) the process used."""
    for command, extra in commands.values():
        run(command, env, extra)
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, (command, extra) in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            run(command, env, extra)
            wall[label].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[label].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {label: (statistics.median(wall[label]), statistics.median(cpu[label]))
            for label in commands}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile from source on every run (PYTHONDONTWRITEBYTECODE=1)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the devscale commands from this tree (PYTHONPATH=DIR)")
    parser.add_argument("--steps", action="store_true",
                        help="also the floor's parts: typer, pydantic, yaml, one model")
    args = parser.parse_args()
    if args.before is not None and not (args.before / "devtrip_scale" / "cli").is_dir():
        parser.error(f"--before {args.before}: no devtrip_scale/cli in it")
    env = dict(os.environ)
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        scripts = Path(tmp)
        (scripts / "minimal_typer.py").write_text(MINIMAL_TYPER)
        (scripts / "minimal_group.py").write_text(MINIMAL_GROUP)
        (scripts / "minimal_load.py").write_text(MINIMAL_LOAD)
        (scripts / "schema_load.py").write_text(SCHEMA_LOAD)
        (scripts / "minimal.yaml").write_text("namespace: devtrip\n")
        found = medians(cases(scripts, args.before, args.steps), args.repeat, env)
    wall0, cpu0 = found["python -c pass (baseline)"]
    print(f"{'command':<40} {'wall s':>7} {'× pass':>7} {'CPU s':>7} {'× pass':>7}")
    for label, (wall, cpu) in found.items():
        print(f"{label:<40} {wall:>7.3f} {wall / wall0:>7.1f} {cpu:>7.3f} {cpu / cpu0:>7.2f}")
    print("load average (1, 5, 15 min) at the end: "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
