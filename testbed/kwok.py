"""Build (once, cached) and run KWOK, the kubelet of the test bed's fake nodes.

KWOK (sigs.k8s.io/kwok, Kubernetes WithOut Kubelet) moves nodes and pods through the Stages in
testbed/kwok/stages.yaml: nodes become Ready and heartbeat, bound pods become Ready, and a pod
annotated RUN_SECONDS (or owned by a Job) ends after that long, Succeeded, or Failed with the
exit code in EXIT_CODE; one annotated FAIL_ATTEMPTS fails while its attempt label is below it,
then succeeds (a worker that passes on retry). KWOK's server is every node's kubelet endpoint:
the API server reads `pods/log` from it, and it serves the file that a `Logs` object (one per
pod, kwok.x-k8s.io) names; `write_log` writes such a file in the container runtime's (CRI)
log format.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from testbed.build import cached_path, go_build
from testbed.net import exit_log, free_port, stop_process, wait_until

MODULE = "sigs.k8s.io/kwok/cmd/kwok"
# v0.7.0 is built against Kubernetes 1.33 client libraries: one minor version behind the
# control plane's 1.34, inside the supported client skew.
VERSION = "v0.7.0"
STAGES = Path(__file__).parent / "kwok" / "stages.yaml"
RUN_SECONDS = "devscale.test/run-seconds"
READY_SECONDS = "devscale.test/ready-seconds"   # how long a pod takes to become Ready
EXIT_CODE = "devscale.test/exit-code"
# A pod fails (EXIT_CODE, else 1) while its devscale.devtrip.io/attempt label is below this.
FAIL_ATTEMPTS = "devscale.test/fail-attempts"
GROUP = "kwok.x-k8s.io"


@dataclass(frozen=True)
class Node:
    """A fake node and what the scheduler may place on it."""

    name: str
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110

    def manifest(self) -> dict[str, Any]:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": {
                    "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                    "type": "kwok"}},
                "status": {"capacity": capacity, "allocatable": capacity}}


# Three nodes of 4 CPUs, 16 GiB and 110 pods each: pods without requests always fit (330),
# a Deployment asking 2 CPUs a pod places 6 and leaves the rest Pending.
NODES = tuple(Node(f"kwok-node-{i}") for i in range(3))

# The one KWOK kind the test bed reads from the API server: per-pod log files.
LOGS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"logs.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs",
                       "singular": "logs"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {
                               "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def binary_path() -> Path:
    return cached_path("kwok", f"{MODULE}@{VERSION}")


def ensure_binary() -> Path:
    """The cached KWOK binary, `go install`ed from the Go module proxy when missing."""
    return go_build(binary_path(), ["go", "install", f"{MODULE}@{VERSION}"], cwd=Path.home(),
                    env={"GOBIN": "{gobin}"})


def logs_object(namespace: str, pod: str, container: str, path: Path) -> dict[str, Any]:
    """The `Logs` object that points KWOK at `path` for one container of one pod."""
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "Logs",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {"logs": [{"containers": [container], "logsFile": str(path),
                               "follow": True}]}}


def write_log(path: Path, lines: Iterable[str], stream: str = "stdout") -> None:
    """Append `lines` to a container log file in the CRI format the kubelet reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for line in lines:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            f.write(f"{stamp} {stream} F {line}\n")


@dataclass
class Kwok:
    """The KWOK controller, managing all nodes, its server on a free loopback port."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "kwok.log"

    def start(self, binary: Path, kubeconfig: Path) -> Kwok:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), f"--kubeconfig={kubeconfig}", f"--config={STAGES}",
                 "--manage-all-nodes=true", "--node-ip=127.0.0.1", f"--node-port={self.port}",
                 f"--server-address=127.0.0.1:{self.port}", "--cidr=10.244.0.0/16",
                 "--node-lease-duration-seconds=0", "--enable-crds=Logs", "--v=WARN"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{self.port}/healthz",
                                     timeout=2).status_code == 200,
                   "kwok", timeout=60, alive=self.died)
        return self

    def died(self) -> str | None:
        return exit_log(self.process, self.log_path)

    def stop(self) -> None:
        stop_process(self.process)
