"""Writes examples/day.csv: one realistic day of the `api` Deployment's load, minute by minute.

A daily curve (quiet night, morning ramp, lunch and evening peaks) with a 20-minute spike at
19:30 and a little noise, recorded while the service ran at a fixed 4 replicas. Deterministic:
`python examples/make_day.py` rewrites the same file.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 11, 20, tzinfo=UTC)
REPLICAS = 4


def demand(minute: int, rnd: random.Random) -> float:
    """Active users at a minute of the day."""
    hour = minute / 60
    base = 60 + 520 * math.exp(-((hour - 12.5) / 3.2) ** 2) + 380 * math.exp(
        -((hour - 20) / 1.8) ** 2)
    spike = 650 if 19.5 <= hour < 19.5 + 20 / 60 else 0
    return max(0.0, base + spike + rnd.gauss(0, 15))


def main() -> None:
    rnd = random.Random(20261120)
    path = Path(__file__).with_name("day.csv")
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "deployment", "replicas", "cpu", "memory", "active_users",
                      "rps", "p95_latency"])
        for minute in range(24 * 60):
            users = demand(minute, rnd)
            rps = users * 0.9
            cpu = 8 + rps * 0.55 / REPLICAS              # % of requests per pod
            memory = 35 + users * 0.03 / REPLICAS + rnd.gauss(0, 1)
            p95 = 0.25 + 0.0009 * max(0.0, rps / REPLICAS - 60) ** 1.4
            at = START + timedelta(minutes=minute)
            out.writerow([at.strftime("%Y-%m-%dT%H:%M:%SZ"), "api", REPLICAS, f"{cpu:.1f}",
                          f"{memory:.1f}", f"{users:.0f}", f"{rps:.1f}", f"{p95:.3f}"])


if __name__ == "__main__":
    main()
