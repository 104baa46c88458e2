"""Draws bench/results/check.json (from bench_check.py --json) as time against N, log-log.

    python bench/plot_check.py bench/results/check.json bench/check-scaling.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(source: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(source.read_text())
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for way, label in (("batched", "devscale (one query per metric)"),
                       ("naive", "one query per Deployment per metric")):
        measured = [(r["n"], r[way]["seconds"]) for r in rows if r.get(way)]  # naive: some N
        ax.plot([n for n, _ in measured], [t for _, t in measured], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Deployments (5 metrics each)")
    ax.set_ylabel("seconds per pass")
    ax.set_title("devscale check: time against the number of Deployments")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
