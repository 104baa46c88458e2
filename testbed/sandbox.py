"""A local sandbox: the test bed's Prometheus and Kubernetes cluster (KWOK nodes) with example
Deployments and synthetic load, on which `devscale check --debug` runs and visibly scales
something: the pods listing before and after shows the new pods scheduled and Ready. The load
is a demand spread over the Ready pods, so the same check run again holds, as it would on a
real service.

`python -m testbed.sandbox` runs one check and stops everything; `--keep` leaves the servers up
and prints the commands to explore them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from testbed.controlplane import ControlPlane
from testbed.exporter import FollowReadyPods, SyntheticExporter
from testbed.net import wait_until
from testbed.prometheus import Prometheus

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "devtrip"
AGAIN_SECONDS = 15   # the sandbox's 10 s rate windows, filled by the new pods' share
# name: (replicas, load). Each load is a demand stated at that many pods, spread over the Ready
# pods as they come and go: CPU at 140 % of requests asks 2 → 4 with the seed's 70 % target, and
# at 4 pods the same demand is 70 %, so the next check holds.
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


def pod_counts(cp: ControlPlane) -> dict[str, tuple[int, int, set[str]]]:
    """Per example Deployment: (pods wanted, pods Ready, nodes they run on)."""
    counts = {}
    pods = cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    for name in EXAMPLES:
        wanted = cp.api("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"
                        )["spec"]["replicas"]
        mine = [p for p in pods if p["metadata"]["labels"].get("app") == name]
        ready = [p for p in mine if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p["status"].get("conditions", []))]
        counts[name] = (wanted, len(ready), {p["spec"].get("nodeName") or "-" for p in ready})
    return counts


def wait_and_list(cp: ControlPlane, when: str) -> None:
    """Wait (up to a minute) for every example's pods to be Ready, then print them."""
    try:
        wait_until(lambda: all(w == r for w, r, _ in pod_counts(cp).values()),
                   "the sandbox's pods Ready", timeout=60, ignore=())
    except TimeoutError as e:
        print(f"({e})")
    print(f"\npods {when}:")
    for name, (wanted, ready, nodes) in pod_counts(cp).items():
        print(f"  {name:<8} {ready}/{wanted} Ready   on {', '.join(sorted(nodes)) or '-'}",
              flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.sandbox", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".sandbox")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    if workdir.exists():
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)

    print("starting the synthetic exporter, Prometheus and the cluster (KWOK nodes) on loopback…")
    exporter = SyntheticExporter()
    for name, (_, load) in EXAMPLES.items():
        # no pods until FollowReadyPods has read the Ready ones from the cluster
        exporter.set_load(NAMESPACE, name, pods=EXAMPLES[name][0], ready=[], **load)
    prometheus = Prometheus(workdir / "prometheus", exporter.port).start()
    cp = ControlPlane(workdir / "controlplane").start()
    follower: FollowReadyPods | None = None
    try:
        kubeconfig = cp.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        create_examples(kubeconfig)
        follower = FollowReadyPods(
            exporter, NAMESPACE, lambda: cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"
                                                )["items"],
            passing=(OSError, httpx.HTTPError)).start()
        config = sandbox_config(workdir, prometheus.url)
        print("letting Prometheus scrape 12 s of load…")
        time.sleep(12)
        command = [sys.executable, "-m", "devtrip_scale", "check", "-c", str(config),
                   "--kubeconfig", str(kubeconfig)]
        wait_and_list(cp, "before the check")
        print(f"\n$ devscale check --debug -c {config} --kubeconfig {kubeconfig}\n", flush=True)
        code = subprocess.run([*command, "--debug"], check=False).returncode
        wait_and_list(cp, "after the check")
        print(f"\nthe load is now spread over the new pods; {AGAIN_SECONDS} s later, the same "
              "check again:", flush=True)
        time.sleep(AGAIN_SECONDS)
        print(f"\n$ devscale check -c {config} --kubeconfig {kubeconfig}\n", flush=True)
        code = code or subprocess.run(command, check=False).returncode
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
        if follower is not None:
            follower.stop()
        cp.stop()
        prometheus.stop()
        exporter.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
