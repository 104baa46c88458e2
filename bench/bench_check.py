"""`devscale check` over 100, 1,000 and 10,000 Deployments × 5 metrics on the real test bed, every
Deployment's pods Ready, against the shell-script way (the same code, but one PromQL query per
Deployment per metric and one GET per Deployment) at 1,000 as the baseline, in the same run.

How each size gets Ready pods:

* up to 1,000 Deployments (``--pods-up-to``): real pods. The bed's controller-manager and
  scheduler run; the benchmark adds KWOK nodes enough for every Deployment's 2 pods (110 pods a
  node) and waits until every Deployment reports 2 Ready pods. The synthetic exporter serves the
  per-pod series of `config/devtrip.yaml`'s five metrics (~34 series per Deployment).
* above (10,000): 20,000 pods would need 182 KWOK nodes, so the benchmark stops the bed's
  controller-manager (no ReplicaSets, no pods) and writes each Deployment's status, 2 replicas
  and 2 Ready, through the status subresource, as the Deployment controller would have. The
  per-pod series (340,000) are more than the Python exporter serves within a scrape, so the five
  metrics are one gauge per Deployment each (50,000 series), still one query per metric.

Each size gets its own exporter and Prometheus, scraping every 3 s up to 100 Deployments and
every 10 s above (a scrape of 34,000 series takes the exporter 1-3 s on the loaded machine), and
the rate windows span four scrapes. The pass starts only once every query returns a value for
every Deployment. devscale reads the metrics as `check` does (`metrics_source`: the queries at
once); the naive way one after another. Each case runs in a fresh process (its own peak RSS,
VmHWM), devscale's best of --repeat, the naive way once: wall and CPU time of the pass, the
seconds spent waiting on Prometheus and on the API server, PromQL queries, API requests, peak
RSS, the load average, and the ratio of the naive way to devscale's.

    python bench/bench_check.py [--sizes 100,1000,10000] [--naive-at 1000] [--repeat 3]
                                [--pods-up-to 1000] [--json F] [--lock FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bed import create_ready, deployment, stop_controller_manager  # noqa: E402

from devtrip_scale.cli._wiring import metrics_source  # noqa: E402
from devtrip_scale.core.trace import Trace  # noqa: E402
from devtrip_scale.kube import connect  # noqa: E402
from devtrip_scale.scaling.config import Settings, load_config  # noqa: E402
from devtrip_scale.scaling.deployments import DeploymentTarget  # noqa: E402
from devtrip_scale.scaling.history import ConfigMapHistory  # noqa: E402
from devtrip_scale.scaling.ports import MetricQuery, MetricResult, Workload  # noqa: E402
from devtrip_scale.scaling.reconcile import metric_queries, run_check  # noqa: E402
from devtrip_scale.scaling.sources.prometheus import PrometheusSource, parse_result  # noqa: E402

# The gauges of the status-written sizes: (metric, gauge, target, each Deployment's value).
GAUGES = [("cpu", "bench_cpu_percent", {"type": "Value", "value": 70}, 70.0),
          ("memory", "bench_memory_percent", {"type": "Value", "value": 80}, 80.0),
          ("active_users", "bench_active_users", {"type": "AverageValue", "value": 100}, 200.0),
          ("rps", "bench_rps", {"type": "AverageValue", "value": 100}, 200.0),
          ("p95_latency", "bench_p95_seconds", {"type": "Value", "value": 2}, 1.5)]


def name_of(i: int) -> str:
    return f"svc-{i:05d}"


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
    names = [name_of(i) for i in range(args.n)]
    trace = Trace()
    api = connect(args.kubeconfig)
    if args.mode == "batched":
        target = DeploymentTarget(api, settings.namespace, trace)
        metrics: Any = metrics_source(settings, trace)   # as `check` reads: all at once
    else:
        target = PerDeploymentTarget(api, settings.namespace, trace, names)
        metrics = PerDeploymentSource(PrometheusSource(settings.prometheus.url, timeout=60,
                                                       trace=trace), names)
    history = ConfigMapHistory(api, settings.namespace, settings.history_configmap, trace)
    cpu, start = time.process_time(), time.perf_counter()
    report = run_check(settings, metrics, target, history, datetime.now(UTC), dry_run=True,
                       trace=trace)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(report.results) == args.n and not report.metric_errors, report.metric_errors
    waited = {kind: sum(e.millis for e in trace.entries if e.kind == kind) / 1000
              for kind in ("promql", "kube")}   # seconds spent waiting on each peer
    print(json.dumps({"seconds": seconds, "cpu": cpu, "queries": trace.count("promql"),
                      "kube": trace.count("kube"), "load": os.getloadavg()[0],
                      "promql_seconds": waited["promql"], "kube_seconds": waited["kube"],
                      "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries the
    parent's RSS at the fork into it, and the parent holds the exporter's series."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def pods_config(workdir: Path, namespace: str, prometheus_url: str, window: str) -> Path:
    """`config/devtrip.yaml` pointed at the bed, its rate windows `window`."""
    doc = (ROOT / "config" / "devtrip.yaml").read_text()
    doc = doc.replace("namespace: devtrip", f"namespace: {namespace}").replace(
        "http://prometheus:9090", prometheus_url).replace(
        "  - selector: app.kubernetes.io/part-of=devtrip", "  - selector: tier=bench").replace(
        "timeout_seconds: 10", "timeout_seconds: 60")
    for preset in ("cpu_utilization ", "http_requests_per_second", "http_p95_latency_seconds"):
        doc = doc.replace(f"preset: {preset}", f"preset: {preset.strip()}\n    window: {window} ")
    path = workdir / f"{namespace}.yaml"
    path.write_text(doc)
    return path


def gauges_config(workdir: Path, namespace: str, prometheus_url: str) -> Path:
    """Five metrics over the one-gauge-per-Deployment series, the devtrip scaling block."""
    doc = {"namespace": namespace,
           "prometheus": {"url": prometheus_url, "timeoutSeconds": 60},
           "targets": [{"selector": "tier=bench"}],
           "scaling": {"minReplicas": 2, "maxReplicas": 10, "tolerance": 0.1},
           "metrics": [{"name": metric, "target": target,
                        "query": f'sum by (deployment) ({gauge}{{namespace="{{namespace}}"}})'}
                       for metric, gauge, target, _ in GAUGES]}
    path = workdir / f"{namespace}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_series(config: Path, n: int, timeout: float = 600) -> float:
    """Until each metric's query returns a value for all `n` Deployments; the seconds waited."""
    settings = load_config(config, env={})
    source = PrometheusSource(settings.prometheus.url, timeout=60)
    start = time.monotonic()
    try:
        while True:
            results = source.fetch(metric_queries(settings))
            short = {r.name: len(r.values) for r in results if len(r.values) < n}
            if not short:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"{settings.namespace}: after {timeout:.0f} s, values for "
                                   f"only {short} of {n} Deployments")
            time.sleep(3)
    finally:
        source.close()


def run_case(mode: str, n: int, config: Path, kubeconfig: Path, repeat: int,
             lock: Path | None = None) -> dict[str, Any]:
    runs = []
    # On a machine shared with other work, each pass waits for the lock held exclusively
    # (others take it shared around their heavy work): the pass runs without their load.
    locked = ["flock", "-x", str(lock)] if lock else []
    for _ in range(repeat):
        proc = subprocess.run([*locked, sys.executable, __file__, "--worker", "--mode", mode, "--n",
                               str(n), "--config", str(config), "--kubeconfig", str(kubeconfig)],
                              capture_output=True, text=True)
        if proc.returncode != 0:   # say why the pass failed, not only that it did
            raise RuntimeError(f"{mode} pass at N={n} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout))
    return min(runs, key=lambda r: r["seconds"])


def create_with_pods(api: Any, exporter: Any, namespace: str, n: int) -> None:
    """`n` Deployments whose pods the cluster runs, each at its load in the exporter."""
    from kubernetes import client

    apps = client.AppsV1Api(api)
    for i in range(n):
        name = name_of(i)
        apps.create_namespaced_deployment(namespace, deployment(
            name, {"app": name, "tier": "bench"}))
        exporter.set_load(namespace, name, pods=2, cpu_percent=70, memory_percent=80,
                          rps=200, p95_seconds=1.5, active_users=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--naive-at", default="1000",
                        help="the sizes at which the naive way runs too (its baseline)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pods-up-to", type=int, default=1000,
                        help="the largest size whose pods run on KWOK nodes; above it the "
                             "Deployments' status is written instead")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--lock", type=Path,
                        help="run each timed devscale pass holding this file's lock exclusively "
                             "(flock), for a machine shared with work that takes it shared")
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

    sizes = sorted(int(s) for s in args.sizes.split(","))
    naive_at = {int(s) for s in args.naive_at.split(",") if s}
    with_pods = [n for n in sizes if n <= args.pods_up_to]
    workdir = Path(tempfile.mkdtemp(prefix="devscale-bench-"))
    cp = ControlPlane(workdir / "cp").start()
    rows = []
    try:
        kubeconfig = cp.kubeconfig(workdir / "kubeconfig")
        api = connect(str(kubeconfig))
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        if with_pods:
            add_nodes(cp, 2 * sum(with_pods))
        for n in sizes:
            ns = f"bench-{n}"
            core.create_namespace({"metadata": {"name": ns}})
            exporter = SyntheticExporter()
            prometheus = None
            try:
                started = time.perf_counter()
                if n in with_pods:
                    create_with_pods(api, exporter, ns, n)
                    wait_all_ready(apps, ns, n)
                    how = "KWOK pods"
                else:
                    stop_controller_manager(cp)   # no ReplicaSets, no pods: status written
                    create_ready(api, [(ns, name_of(i), {}) for i in range(n)])
                    for i in range(n):
                        for _, gauge, _, value in GAUGES:
                            exporter.set_gauge(gauge, value, namespace=ns, deployment=name_of(i))
                    how = "status subresource"
                ready = time.perf_counter() - started
                interval = 3 if n <= 100 else 10
                prometheus = Prometheus(workdir / f"prom-{n}", exporter.port,
                                        scrape_interval=f"{interval}s").start()
                config = (pods_config(workdir, ns, prometheus.url, f"{4 * interval}s")
                          if n in with_pods else gauges_config(workdir, ns, prometheus.url))
                waited = wait_series(config, n)
                print(f"N={n}: {n} Deployments Ready ({how}) in {ready:.0f} s; every series "
                      f"after {waited:.0f} s more", flush=True)
                batched = run_case("batched", n, config, kubeconfig, args.repeat, args.lock)
                # One naive run: at 1,000 Deployments it issues 5,000 queries, and its spread
                # does not matter against a ratio this size.
                naive = run_case("naive", n, config, kubeconfig, 1) if n in naive_at else None
            finally:
                if prometheus is not None:
                    prometheus.stop()
                exporter.stop()
            rows.append({"n": n, "ready": how, "scrape_seconds": interval,
                         "batched": batched, "naive": naive,
                         "speedup": naive["seconds"] / batched["seconds"] if naive else None})
            print_row(rows[-1])
    finally:
        cp.stop()
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
        print(f"{'N':>6} {'way':<9} {'seconds':>8} {'CPU s':>6} {'queries':>8} {'API req':>8} "
              f"{'peak RSS':>9} {'load':>5} {'naive ÷ devscale':>17}")
        HEADER_PRINTED = True
    for way in ("batched", "naive"):
        r = row[way]
        if r is None:
            continue
        ratio = f"{row['speedup']:.1f}×" if way == "naive" else ""
        print(f"{row['n']:>6} {way:<9} {r['seconds']:>8.3f} {r['cpu']:>6.2f} {r['queries']:>8} "
              f"{r['kube']:>8} {r['rss_mb']:>7.0f}MB {r['load']:>5.1f} {ratio:>17}", flush=True)


if __name__ == "__main__":
    main()
