"""Cold start of the command line: `devscale --help`, `devscale check --help` and
`devscale config validate` against `python -c pass`, each a fresh process, median of --repeat
runs; goals ≤ 3×, ≤ 4× and ≤ 4×. Wall time, and the CPU time the process used (on a machine
shared with other work, the CPU time is what the command itself costs).

    python bench/bench_startup.py [--repeat 15] [--no-bytecode]

Bytecode is cached as an installed package has it (pip compiles it at install time): each
command runs once untimed first, with PYTHONDONTWRITEBYTECODE taken out of its environment.
`--no-bytecode` keeps it, so every run compiles devtrip_scale from source. Two more rows show
Typer's own floor: a minimal Typer app of one command with one option, `--help` on the app and
on its command (Typer 0.29 coerces the group's unset options through pydantic, which it imports
on the first subcommand, whatever the command does).
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


def cases(minimal: Path) -> dict[str, list[str]]:
    return {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "devscale --help": [sys.executable, "-m", "devtrip_scale", "--help"],
        "devscale check --help": [sys.executable, "-m", "devtrip_scale", "check", "--help"],
        "devscale config validate": [sys.executable, "-m", "devtrip_scale", "config",
                                     "validate", "-c", "config/devtrip.yaml"],
        "minimal Typer app --help": [sys.executable, str(minimal), "--help"],
        "minimal Typer sub --help": [sys.executable, str(minimal), "sub", "--help"],
    }


def medians(commands: dict[str, list[str]], repeat: int, env: dict[str, str]
            ) -> dict[str, tuple[float, float]]:
    """Each command once untimed, then `repeat` rounds of every command in turn: a load that
    comes and goes on a shared machine falls on every command alike. Per command, the median
    wall time and the median CPU time (user + system) the process used."""
    for command in commands.values():
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
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
    args = parser.parse_args()
    env = dict(os.environ)
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_typer.py"
        minimal.write_text(MINIMAL_TYPER)
        found = medians(cases(minimal), args.repeat, env)
    wall0, cpu0 = found["python -c pass (baseline)"]
    print(f"{'command':<28} {'wall s':>7} {'× pass':>7} {'CPU s':>7} {'× pass':>7}")
    for label, (wall, cpu) in found.items():
        print(f"{label:<28} {wall:>7.3f} {wall / wall0:>7.1f} {cpu:>7.3f} {cpu / cpu0:>7.1f}")


if __name__ == "__main__":
    main()
