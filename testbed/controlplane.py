"""Build (once, cached outside the repo) and run the test bed's Kubernetes cluster on loopback.

One binary from the Go module in testbed/controlplane (k8s.io/kubernetes at the version its
go.mod pins, from the Go module proxy) runs etcd + kube-apiserver, kube-controller-manager and
kube-scheduler; KWOK (testbed/kwok.py) is the kubelet of a few fake nodes. Together: a
Deployment gets pods, the scheduler binds them to nodes, and they become Ready.

`python -m testbed.controlplane build` builds the binaries (control plane and KWOK) and prints
their paths.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from testbed import kwok
from testbed.build import cached_path, go_build
from testbed.net import exit_log, free_port, stop_process, wait_until

SOURCE = Path(__file__).parent / "controlplane"
ADMIN_TOKEN = "devscale-admin-token"
# Static identities of the test bed: name -> (token, groups). RBAC is on; tests bind roles.
# The controller-manager and the scheduler run as the users Kubernetes' bootstrap RBAC
# policy grants their roles to.
USERS = {"admin": (ADMIN_TOKEN, "system:masters"), "limited": ("devscale-limited-token", ""),
         "system:kube-controller-manager": ("devscale-controller-manager-token", ""),
         "system:kube-scheduler": ("devscale-scheduler-token", "")}


def kubernetes_version() -> str:
    """The k8s.io/kubernetes release testbed/controlplane/go.mod pins, e.g. v1.34.4."""
    found = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (SOURCE / "go.mod").read_text(), re.M)
    if found is None:
        raise RuntimeError(f"{SOURCE / 'go.mod'}: no k8s.io/kubernetes requirement")
    return found.group(1)


def ldflags() -> str:
    """The version the binaries report (the go.mod's release), as Kubernetes' own build sets it."""
    version = kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor,
              "gitTreeState": "clean"}
    return " ".join(f"-X {pkg}.{var}={value}" for pkg in (
        "k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, value in values.items())


def binary_path() -> Path:
    return cached_path("controlplane", *(
        (SOURCE / name).read_bytes() for name in ("go.mod", "go.sum", "main.go")), ldflags())


def ensure_binary() -> Path:
    """The cached control-plane binary, built with `go build` when missing."""
    return go_build(binary_path(), ["go", "build", "-ldflags", ldflags(), "-o",
                                    "{gobin}/controlplane", "."], cwd=SOURCE)


@dataclass
class Component:
    """kube-controller-manager or kube-scheduler: the control-plane binary run as that component,
    serving /healthz on a free loopback port."""

    name: str
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, binary: Path, args: list[str]) -> Component:
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), self.name, *args, "--bind-address=127.0.0.1",
                 f"--secure-port={self.port}", "--leader-elect=false", "--v=0"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, f"kube-{self.name}", timeout=90,
                   alive=lambda: exit_log(self.process, self.log_path))
        return self

    def _healthy(self) -> bool:
        r = httpx.get(f"https://127.0.0.1:{self.port}/healthz", verify=False, timeout=2)
        return r.status_code == 200

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class ControlPlane:
    """A whole cluster on loopback: kube-apiserver with embedded etcd (RBAC on, static tokens),
    kube-controller-manager, kube-scheduler, and KWOK with the nodes in kwok.NODES."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    components: list[Component] = field(default_factory=list)
    kwok: kwok.Kwok | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def logs_dir(self) -> Path:
        """Where tests write the container log files KWOK serves (see kwok.write_log)."""
        return self.workdir / "pod-logs"

    def start(self) -> ControlPlane:
        binary, kwok_binary = ensure_binary(), kwok.ensure_binary()
        try:
            self._start_apiserver(binary)
            data = self.workdir / "data"
            self.components.append(Component(
                "controller-manager", self.workdir / "controller-manager.log").start(binary, [
                    f"--kubeconfig={self._component_kubeconfig('controller-manager')}",
                    # each controller as its own ServiceAccount, as kubeadm runs it: RBAC's
                    # bootstrap roles grant the controllers' rights to those accounts
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={data / 'sa.key'}",
                    f"--root-ca-file={self.ca_file}"]))
            self.components.append(Component(
                "scheduler", self.workdir / "scheduler.log").start(binary, [
                    f"--kubeconfig={self._component_kubeconfig('scheduler')}"]))
            self._start_kwok(kwok_binary)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_apiserver(self, binary: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text("".join(f'{tok},{user},{user}-uid,"{groups}"\n'
                                  for user, (tok, groups) in USERS.items()))
        self.port = free_port()
        etcd, peer = free_port(), free_port()
        data = self.workdir / "data"
        args = [
            str(binary), "apiserver", "-data-dir", str(data), "-etcd-port", str(etcd),
            "-etcd-peer-port", str(peer), "--",
            f"--etcd-servers=http://127.0.0.1:{etcd}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={data / 'sa.key'}",
            f"--service-account-signing-key-file={data / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--disable-admission-plugins=ServiceAccount",
            # KWOK's nodes report 127.0.0.1 (KWOK's own server) as their kubelet's address.
            "--kubelet-preferred-address-types=InternalIP",
            "--v=0",
        ]
        self.log_path = self.workdir / "controlplane.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, "kube-apiserver", timeout=90, alive=self._died)

    def _component_kubeconfig(self, name: str) -> Path:
        user = f"system:kube-{name}"
        return self.kubeconfig(self.workdir / f"{name}.kubeconfig", user=user)

    def _start_kwok(self, binary: Path) -> None:
        self.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                 kwok.LOGS_CRD)
        wait_until(lambda: any(
            c["type"] == "Established" and c["status"] == "True" for c in self.api(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       f"{kwok.LOGS_CRD['metadata']['name']}")["status"].get("conditions", [])),
            "the KWOK Logs CRD", timeout=30)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.kwok = kwok.Kwok(self.workdir / "kwok").start(
            binary, self.kubeconfig(self.workdir / "kwok.kubeconfig"))
        for node in kwok.NODES:
            self.api("POST", "/api/v1/nodes", node.manifest())
        wait_until(self._nodes_ready, "the KWOK nodes Ready and untainted", timeout=60,
                   alive=self.kwok.died)

    def _nodes_ready(self) -> bool:
        ready = {n["metadata"]["name"] for n in self.api("GET", "/api/v1/nodes")["items"]
                 if not n["spec"].get("taints") and any(
                     c["type"] == "Ready" and c["status"] == "True"
                     for c in n.get("status", {}).get("conditions", []))}
        return ready >= {node.name for node in kwok.NODES}

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request to the API server as the admin; the decoded JSON answer."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        r = httpx.request(method, f"{self.url}{path}", json=body, verify=ctx, timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        r.raise_for_status()
        return r.json()

    def _ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        r = httpx.get(f"{self.url}/readyz", verify=ctx,
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=2)
        return r.status_code == 200

    def _died(self) -> str | None:
        return exit_log(self.process, self.log_path)

    def stop(self) -> None:
        if self.kwok is not None:
            self.kwok.stop()
        for component in reversed(self.components):
            component.stop()
        stop_process(self.process)

    def kubeconfig(self, path: Path, user: str = "admin", token: str | None = None,
                   namespace: str = "default") -> Path:
        """Write a kubeconfig for one identity (a static user, or a given token)."""
        import yaml

        secret = token or USERS[user][0]
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
            "clusters": [{"name": "testbed", "cluster": {
                "server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": secret}}],
            "contexts": [{"name": "testbed", "context": {
                "cluster": "testbed", "user": user, "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(doc))
        return path


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        print(ensure_binary())
        print(kwok.ensure_binary())
        return 0
    if argv[1:] == ["path"]:
        print(binary_path())
        print(kwok.binary_path())
        return 0
    print("usage: python -m testbed.controlplane build|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
