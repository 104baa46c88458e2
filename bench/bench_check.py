"""`devscale check` over N Deployments × 5 metrics on the real test bed, against the shell-script
way (the same code, but one PromQL query per Deployment per metric and one GET per Deployment).

It starts the test bed itself (the whole cluster: kube-apiserver + etcd, controller-manager,
scheduler and KWOK nodes; Prometheus and the synthetic exporter), adds KWOK nodes enough for
every Deployment's 2 pods (110 pods a node), creates N Deployments with load and waits until every
one has its 2 pods Ready, as a real cluster's would; then runs each case in a fresh process (for a
clean peak RSS) and reports the best of --repeat (the naive way runs once, at the sizes of
--naive-at only): wall time of the pass, PromQL queries, API requests, peak RSS, and the ratio of
the naive way to devscale's.

    python bench/bench_check.py [--sizes 100,1000] [--naive-at 100,1000] [--repeat 3] [--json F]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtrip_scale.core.trace import Trace  # noqa: E402
from devtrip_scale.kube import connect  # noqa: E402
from devtrip_scale.scaling.config import Settings, load_config  # noqa: E402
from devtrip_scale.scaling.deployments import DeploymentTarget  # noqa: E402
from devtrip_scale.scaling.history import ConfigMapHistory  # noqa: E402
from devtrip_scale.scaling.ports import MetricQuery, MetricResult, Workload  # noqa: E402
from devtrip_scale.scaling.reconcile import run_check  # noqa: E402
from devtrip_scale.scaling.sources.prometheus import PrometheusSource, parse_result  # noqa: E402

WINDOW = "15s"


class PerDeploymentSource:
    """The shell-script way: one query per Deployment per metric, each filtered to it."""

    def __init__(self, inner: PrometheusSource, names: Sequence[str]) -> None:
        self._inner, self._names = inner, list(names)

    def fetch(self, queries: Sequence[MetricQuery]) -> list[MetricResult]:
        out = []
        for q in queries:
            values: dict[str, float] = {}
            for name in self._names:
                only = f'label_replace(vector(1), "deployment", "{name}", "", "")'
                one = MetricQuery(q.name, f"({q.promql}) and on(deployment) {only}")
                [result] = self._inner.fetch([one])
                values.update(result.values)
            out.append(MetricResult(q.name, values=values) if values
                       else parse_result(q.name, []))
        return out

    def close(self) -> None:
        self._inner.close()


class PerDeploymentTarget(DeploymentTarget):
    """The shell-script way on the Kubernetes side: `kubectl get deployment NAME` for each."""

    def __init__(self, api: Any, namespace: str, trace: Trace, names: Sequence[str]) -> None:
        super().__init__(api, namespace, trace)
        self._names = list(names)

    def list(self, selector: str | None) -> list[Workload]:
        return [self.get(name) for name in self._names]


def worker(args: argparse.Namespace) -> None:
    """One pass in this fresh process; prints its figures as JSON."""
    settings: Settings = load_config(Path(args.config), env={})
    names = [f"svc-{i:04d}" for i in range(args.n)]
    trace = Trace()
    api = connect(args.kubeconfig)
    source = PrometheusSource(settings.prometheus.url, timeout=30, trace=trace)
    if args.mode == "batched":
        target = DeploymentTarget(api, settings.namespace, trace)
        metrics: Any = source
    else:
        target = PerDeploymentTarget(api, settings.namespace, trace, names)
        metrics = PerDeploymentSource(source, names)
    history = ConfigMapHistory(api, settings.namespace, settings.history_configmap, trace)
    start = time.perf_counter()
    report = run_check(settings, metrics, target, history, datetime.now(UTC), dry_run=True,
                       trace=trace)
    seconds = time.perf_counter() - start
    assert len(report.results) == args.n and not report.metric_errors, report.metric_errors
    print(json.dumps({"seconds": seconds, "queries": trace.count("promql"),
                      "kube": trace.count("kube"),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bed_config(workdir: Path, namespace: str, prometheus_url: str) -> Path:
    doc = (ROOT / "config" / "devtrip.yaml").read_text()
    doc = doc.replace("namespace: devtrip", f"namespace: {namespace}").replace(
        "http://prometheus:9090", prometheus_url).replace(
        "  - selector: app.kubernetes.io/part-of=devtrip", "  - selector: tier=bench")
    doc = doc.replace("preset: cpu_utilization ", f"preset: cpu_utilization\n    window: {WINDOW} ")
    doc = doc.replace("preset: http_requests_per_second", "preset: http_requests_per_second\n"
                      f"    window: {WINDOW}")
    doc = doc.replace("preset: http_p95_latency_seconds", "preset: http_p95_latency_seconds\n"
                      f"    window: {WINDOW}")
    path = workdir / f"{namespace}.yaml"
    path.write_text(doc)
    return path


def run_case(mode: str, n: int, config: Path, kubeconfig: Path, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--worker", "--mode", mode, "--n",
                               str(n), "--config", str(config), "--kubeconfig", str(kubeconfig)],
                              capture_output=True, text=True)
        if proc.returncode != 0:   # say why the pass failed, not only that it did
            raise RuntimeError(f"{mode} pass at N={n} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout))
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--naive-at", default="100,1000",
                        help="the sizes at which the naive way runs too (its baseline)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from kubernetes import client

    from testbed.controlplane import ControlPlane
    from testbed.exporter import SyntheticExporter
    from testbed.prometheus import Prometheus

    sizes = [int(s) for s in args.sizes.split(",")]
    naive_at = {int(s) for s in args.naive_at.split(",") if s}
    workdir = Path(tempfile.mkdtemp(prefix="devscale-bench-"))
    exporter = SyntheticExporter()
    cp = ControlPlane(workdir / "cp").start()
    prometheus = None
    rows = []
    try:
        kubeconfig = cp.kubeconfig(workdir / "kubeconfig")
        api = connect(str(kubeconfig))
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        add_nodes(cp, 2 * sum(sizes))
        for n in sizes:
            ns = f"bench-{n}"
            core.create_namespace({"metadata": {"name": ns}})
            for i in range(n):
                name = f"svc-{i:04d}"
                labels = {"app": name, "tier": "bench"}
                apps.create_namespaced_deployment(ns, {
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": labels}, "spec": {
                                 "containers": [{"name": "app", "image": "x.invalid/a:1"}]}}}})
                exporter.set_load(ns, name, pods=2, cpu_percent=70, memory_percent=80,
                                  rps=200, p95_seconds=1.5, active_users=200)
        for n in sizes:
            wait_all_ready(apps, f"bench-{n}", n)
        prometheus = Prometheus(workdir / "prom", exporter.port, scrape_interval="3s").start()
        time.sleep(20)   # more than the rate window's worth of scrapes for every series
        for n in sizes:
            config = bed_config(workdir, f"bench-{n}", prometheus.url)
            batched = run_case("batched", n, config, kubeconfig, args.repeat)
            # One naive run: at 1,000 Deployments it issues 5,000 queries, and its spread
            # does not matter against a ratio this size.
            naive = run_case("naive", n, config, kubeconfig, 1) if n in naive_at else None
            rows.append({"n": n, "batched": batched, "naive": naive,
                         "speedup": naive["seconds"] / batched["seconds"] if naive else None})
            print_row(rows[-1])
    finally:
        if prometheus is not None:
            prometheus.stop()
        cp.stop()
        exporter.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


def add_nodes(cp: Any, pods: int) -> None:
    """KWOK nodes enough, beside the bed's own, for `pods` pods to be placed and become Ready."""
    from testbed import kwok
    from testbed.net import wait_until

    room = sum(node.pods for node in kwok.NODES)
    extra = [kwok.Node(f"kwok-bench-{i}") for i in range(max(0, -(-(pods - room) // 110)) + 1)]
    for node in extra:
        cp.api("POST", "/api/v1/nodes", node.manifest())

    def ready() -> bool:
        nodes = cp.api("GET", "/api/v1/nodes")["items"]
        up = {n["metadata"]["name"] for n in nodes if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", []))}
        return up >= {node.name for node in extra}

    wait_until(ready, f"{len(extra)} more KWOK nodes Ready", timeout=120)


def wait_all_ready(apps: Any, namespace: str, n: int, timeout: float = 3600) -> None:
    """Until each of the `n` Deployments of `namespace` has its 2 pods Ready."""
    deadline = time.monotonic() + timeout
    while True:
        items = apps.list_namespaced_deployment(namespace).items
        ready = sum(1 for d in items if (d.status.ready_replicas or 0) == 2)
        if ready == n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{namespace}: {ready} of {n} Deployments Ready after {timeout}s")
        time.sleep(5)


HEADER_PRINTED = False


def print_row(row: dict[str, Any]) -> None:
    global HEADER_PRINTED
    if not HEADER_PRINTED:
        print(f"{'N':>5} {'way':<9} {'seconds':>8} {'queries':>8} {'API req':>8} "
              f"{'peak RSS':>9} {'naive ÷ devscale':>17}")
        HEADER_PRINTED = True
    for way in ("batched", "naive"):
        r = row[way]
        if r is None:
            continue
        ratio = f"{row['speedup']:.1f}×" if way == "naive" else ""
        print(f"{row['n']:>5} {way:<9} {r['seconds']:>8.3f} {r['queries']:>8} {r['kube']:>8} "
              f"{r['rss_mb']:>7.0f}MB {ratio:>17}", flush=True)


if __name__ == "__main__":
    main()
