"""Build (once, cached outside the repo) and run etcd + kube-apiserver on loopback.

`python -m testbed.controlplane build` builds the binary from the Go module in
testbed/controlplane (Kubernetes v1.34.4 from the Go module proxy) and prints its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testbed.net import exit_log, free_port, stop_process, wait_until

SOURCE = Path(__file__).parent / "controlplane"
ADMIN_TOKEN = "devscale-admin-token"
# Static identities of the test bed: name -> (token, groups). RBAC is on; tests bind roles.
USERS = {"admin": (ADMIN_TOKEN, "system:masters"), "limited": ("devscale-limited-token", "")}


def cache_dir() -> Path:
    base = os.environ.get("DEVSCALE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "devscale" if base else Path.home() / ".cache" / "devscale"


def binary_path() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return cache_dir() / f"controlplane-{digest.hexdigest()[:16]}"


def ensure_binary() -> Path:
    """The cached control-plane binary, built with `go build` when missing."""
    target = binary_path()
    if target.is_file():
        return target
    if shutil.which("go") is None:
        raise RuntimeError("Go is needed to build the test control plane (apt-get install golang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    subprocess.run(["go", "build", "-o", str(partial), "."], cwd=SOURCE, check=True)
    partial.rename(target)
    return target


@dataclass
class ControlPlane:
    """A running kube-apiserver with embedded etcd, RBAC on, reachable with static tokens."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    def start(self) -> ControlPlane:
        binary = ensure_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text("".join(f'{tok},{user},{user}-uid,"{groups}"\n'
                                  for user, (tok, groups) in USERS.items()))
        self.port = free_port()
        etcd, peer = free_port(), free_port()
        data = self.workdir / "data"
        args = [
            str(binary), "-data-dir", str(data), "-etcd-port", str(etcd),
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
            "--v=0",
        ]
        self.log_path = self.workdir / "controlplane.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, "kube-apiserver", timeout=90, alive=self._died)
        return self

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
        return 0
    if argv[1:] == ["path"]:
        print(binary_path())
        return 0
    print("usage: python -m testbed.controlplane build|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
