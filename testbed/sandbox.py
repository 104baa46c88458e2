"""A local sandbox: the test bed's Prometheus and kube-apiserver with example Deployments and
synthetic load, on which `devscale check --debug` runs and visibly scales something.

`python -m testbed.sandbox` runs one check and stops everything; `--keep` leaves the servers up
and prints the commands to explore them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from testbed.controlplane import ControlPlane
from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "devtrip"
# name: (replicas, load); CPU at 140 % of requests asks 2 → 4 with the seed's 70 % target.
EXAMPLES = {
    "api": (2, {"cpu_percent": 140, "memory_percent": 50, "rps": 120, "p95_seconds": 0.4,
                "active_users": 150}),
    "search": (2, {"cpu_percent": 60, "memory_percent": 70, "rps": 150, "p95_seconds": 3.2,
                   "active_users": 90}),
    "web": (4, {"cpu_percent": 50, "memory_percent": 75, "rps": 200, "p95_seconds": 0.3,
                "active_users": 380}),
}


def sandbox_config(workdir: Path, prometheus_url: str) -> Path:
    """config/devtrip.yaml pointed at the sandbox, with 10 s rate windows for new series."""
    doc = yaml.safe_load((ROOT / "config" / "devtrip.yaml").read_text())
    doc["prometheus"]["url"] = prometheus_url
    for metric in doc["metrics"]:
        if metric.get("preset") in ("cpu_utilization", "http_requests_per_second",
                                    "http_p95_latency_seconds"):
            metric["window"] = "10s"
    path = workdir / "devscale.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def create_examples(kubeconfig: Path) -> None:
    from kubernetes import client

    from devtrip_scale.kube import connect

    api = connect(str(kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    for name, (replicas, _) in EXAMPLES.items():
        labels = {"app": name, "app.kubernetes.io/part-of": "devtrip"}
        apps.create_namespaced_deployment(NAMESPACE, {
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "registry.invalid/devtrip/app:1"}]}}}})
    api.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.sandbox", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".sandbox")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    if workdir.exists():
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)

    print("starting the synthetic exporter, Prometheus and kube-apiserver on loopback…")
    exporter = SyntheticExporter()
    for name, (_, load) in EXAMPLES.items():
        exporter.set_load(NAMESPACE, name, pods=EXAMPLES[name][0], **load)
    prometheus = Prometheus(workdir / "prometheus", exporter.port).start()
    cp = ControlPlane(workdir / "controlplane").start()
    try:
        kubeconfig = cp.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        create_examples(kubeconfig)
        config = sandbox_config(workdir, prometheus.url)
        print("letting Prometheus scrape 12 s of load…")
        time.sleep(12)
        command = [sys.executable, "-m", "devtrip_scale", "check", "--debug", "-c", str(config),
                   "--kubeconfig", str(kubeconfig)]
        print(f"\n$ devscale check --debug -c {config} --kubeconfig {kubeconfig}\n", flush=True)
        code = subprocess.run(command, check=False).returncode
        if args.keep:
            print(f"\nThe sandbox keeps running (Ctrl-C stops it). In another shell:\n"
                  f"  export KUBECONFIG={kubeconfig}\n"
                  f"  devscale check --debug -c {config}\n"
                  f"Prometheus: {prometheus.url}\n")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return code
    finally:
        cp.stop()
        prometheus.stop()
        exporter.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
