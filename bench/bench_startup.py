"""Cold start of the command line: `devscale --help` and `devscale check --help` against
`python -c pass`, each a fresh process, median of --repeat runs; goal ≤ 0.25 s and ≤ 4×.

    python bench/bench_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "devscale --help": [sys.executable, "-m", "devtrip_scale", "--help"],
    "devscale check --help": [sys.executable, "-m", "devtrip_scale", "check", "--help"],
    "devscale config validate": [sys.executable, "-m", "devtrip_scale", "config", "validate",
                                 "-c", "config/devtrip.yaml"],
}


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    baseline = 0.0
    print(f"{'command':<28} {'median s':>9} {'× python -c pass':>17}")
    for label, command in CASES.items():
        took = median_seconds(command, args.repeat)
        baseline = baseline or took
        print(f"{label:<28} {took:>9.3f} {took / baseline:>17.1f}")


if __name__ == "__main__":
    main()
