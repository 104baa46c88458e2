"""Cold start of the command line: `devscale --help`, `devscale check --help` and
`devscale config validate` against `python -c pass`, each a fresh process, median of --repeat
runs; goals ≤ 3×, ≤ 4× and ≤ 4×.

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
            ) -> dict[str, float]:
    """Each command once untimed, then `repeat` rounds of every command in turn: a load that
    comes and goes on a shared machine falls on every command alike."""
    for command in commands.values():
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


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
    baseline = found["python -c pass (baseline)"]
    print(f"{'command':<28} {'median s':>9} {'× python -c pass':>17}")
    for label, took in found.items():
        print(f"{label:<28} {took:>9.3f} {took / baseline:>17.1f}")


if __name__ == "__main__":
    main()
