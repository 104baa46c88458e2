"""The test bed a benchmark runs on: the whole cluster (control plane and KWOK nodes), Redis,
and a namespace of its own, in a temporary directory; stopped when the benchmark ends."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.redis import Redis  # noqa: E402


@dataclass(frozen=True)
class Bed:
    work: Path
    controlplane: ControlPlane
    kubeconfig: Path
    redis_url: str
    namespace: str


@contextmanager
def bed(name: str, namespace: str = "bench") -> Iterator[Bed]:
    """Start the cluster and Redis, make `namespace`, and stop both afterwards."""
    from kubernetes import client

    from devtrip_scale.kube import connect

    work = Path(tempfile.mkdtemp(prefix=f"devscale-bench-{name}-"))
    cp = ControlPlane(work / "cp").start()
    redis = Redis(work / "redis").start()
    try:
        kubeconfig = cp.kubeconfig(work / "kubeconfig")
        api = connect(str(kubeconfig))
        try:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        finally:
            api.close()
        yield Bed(work, cp, kubeconfig, redis.url, namespace)
    finally:
        redis.stop()
        cp.stop()


def write_json(path: Path | None, figures: Any) -> None:
    """The figures as JSON, where --json asks for them."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2))
