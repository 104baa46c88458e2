"""The worker half's sandbox: the test bed's cluster (KWOK nodes) and Redis, on which
`devscale workers serve` runs with its gRPC API on TLS and a token, takes the seed's request
(`XADD … type scale_up pod_count 3`) and runs examples/pipeline.yaml, while the pods are shown
coming and going and their logs are relayed.

`python -m testbed.workers_sandbox` (or `bash scripts/sandbox.sh --workers`) runs the request and
the pipeline and stops everything; `--keep` leaves the servers up and prints the commands, with
the server, the CA and the token filled in, to try more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from testbed import kwok
from testbed.controlplane import ADMIN_TOKEN, ControlPlane
from testbed.net import free_port, stop_process, wait_until
from testbed.redis import Redis

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "devtrip"
STREAM, RESULTS = "devscale:requests", "devscale:results"
TASK = "build-42"
BUILD = "ci-1"
TASK_SECONDS, STAGE_SECONDS = 8, 5     # how long KWOK runs a task's and a stage's pods
SELECTOR = "app.kubernetes.io/managed-by=devscale"


def workers_config(workdir: Path, redis_url: str, api_port: int) -> Path:
    """A workers.yaml for the sandbox: its Redis, the gRPC API on TLS (api.pem/api.key beside
    it), pods that KWOK runs TASK_SECONDS."""
    from devtrip_scale.workers.config import example

    doc: dict[str, Any] = example(NAMESPACE)
    doc["redis"] = {"url": redis_url, "stream": STREAM, "results_stream": RESULTS,
                    "block_seconds": 1, "socket_timeout_seconds": 10}
    doc["worker"]["annotations"] = {kwok.RUN_SECONDS: str(TASK_SECONDS)}
    doc["logs_dir"] = str(workdir / "worker-logs")
    doc["cancel_grace_seconds"] = 2
    doc["shutdown_grace_seconds"] = 5
    doc["api"] = {"enabled": True, "listen": f"127.0.0.1:{api_port}",
                  "tls": {"cert_file": "api.pem", "key_file": "api.key"}}
    path = workdir / "workers.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sandbox_pipeline(workdir: Path) -> Path:
    """examples/pipeline.yaml with one change: KWOK runs each stage's pods STAGE_SECONDS (a
    KWOK pod without that annotation runs for ever: there is no image to run)."""
    doc = yaml.safe_load((ROOT / "examples" / "pipeline.yaml").read_text())
    doc["defaults"].setdefault("annotations", {})[kwok.RUN_SECONDS] = str(STAGE_SECONDS)
    path = workdir / "pipeline.yaml"
    path.write_text("# examples/pipeline.yaml, its pods given a run time on KWOK\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return path


def certificate(workdir: Path) -> None:
    """A self-signed certificate for localhost and 127.0.0.1, as the README's recipe makes it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", "api.key",
                    "-out", "api.pem"], cwd=workdir, check=True, capture_output=True)


class PodLogs:
    """KWOK's stand-in for the containers' output: each worker pod gets a log (a `Logs`
    object and its CRI file) as soon as it is seen, which the server reads and relays."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.seen: set[str] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pod-logs", daemon=True)

    def start(self) -> PodLogs:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(httpx.HTTPError, OSError):
                for pod in pods(self.cp):
                    name = pod["metadata"]["name"]
                    if name not in self.seen:   # at once: KWOK must know it before the end
                        self.seen.add(name)
                        self._write(name, pod["metadata"].get("annotations", {}),
                                    pod["metadata"].get("labels", {}))
            self.stopping.wait(0.2)

    def _write(self, pod: str, annotations: dict[str, str], labels: dict[str, str]) -> None:
        from devtrip_scale.workers import INDEX_LABEL, STAGE_ANNOTATION, TASK_ID_ANNOTATION

        what = (f"stage {annotations[STAGE_ANNOTATION]}" if STAGE_ANNOTATION in annotations
                else f"task {annotations.get(TASK_ID_ANNOTATION, '?')}")
        index = labels.get(INDEX_LABEL, "0")
        path = self.cp.logs_dir / NAMESPACE / pod / "worker.log"
        kwok.write_log(path, [f"{what}, worker {index}: working", f"{what}, worker {index}: done"])
        self.cp.api("POST", f"/apis/{kwok.GROUP}/v1alpha1/namespaces/{NAMESPACE}/logs",
                    kwok.logs_object(NAMESPACE, pod, "worker", path))


def pods(cp: ControlPlane) -> list[dict[str, Any]]:
    """The worker pods devscale manages in the sandbox's namespace."""
    items: list[dict[str, Any]] = cp.api(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={SELECTOR}")["items"]
    return items


class Timeline:
    """The worker pods' changes (created, each phase, deleted) as lines, from a list (made in
    the constructor, so that nothing created after it is missed) and a watch from its
    resourceVersion, in a thread until `stop()` is asked and no worker pod is left."""

    def __init__(self, cp: ControlPlane) -> None:
        self.base = f"{cp.url}/api/v1/namespaces/{NAMESPACE}/pods"
        self.verify = ssl.create_default_context(cafile=str(cp.ca_file))
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        listed = httpx.get(self.base, params={"labelSelector": SELECTOR}, verify=self.verify,
                           headers=self.headers, timeout=10).json()
        self.version: str = listed["metadata"]["resourceVersion"]
        self.phases = {p["metadata"]["name"]: p["status"].get("phase", "Pending")
                       for p in listed["items"]}
        self.lines: list[str] = []
        self.start = time.monotonic()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="pod-timeline", daemon=True)
        self.thread.start()

    def stop(self) -> list[str]:
        self.stopping.set()
        self.thread.join(60)
        return self.lines

    def _watch(self) -> None:
        while not (self.stopping.is_set() and not self.phases):
            with httpx.stream("GET", self.base, params={
                    "labelSelector": SELECTOR, "watch": "true", "resourceVersion": self.version,
                    "allowWatchBookmarks": "true", "timeoutSeconds": "1"},
                    verify=self.verify, headers=self.headers, timeout=10) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    self._event(json.loads(line))

    def _event(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        if event["type"] == "ERROR":
            raise RuntimeError(f"the pod watch failed: {pod.get('message')}")
        self.version = pod["metadata"]["resourceVersion"]
        if event["type"] == "BOOKMARK":
            return
        name = pod["metadata"]["name"]
        phase = ("deleted" if event["type"] == "DELETED"
                 else pod["status"].get("phase", "Pending"))
        if self.phases.get(name) != phase:
            self.lines.append(f"  {time.monotonic() - self.start:5.1f}s  {name:<28} {phase}")
        if phase == "deleted":
            self.phases.pop(name, None)
        else:
            self.phases[name] = phase


def shell(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Print `$ line` (with `devscale` as a reader types it) and run it, its output shown."""
    print(f"\n$ {line}", flush=True)
    command = line.replace("devscale ", f"{shlex.quote(sys.executable)} -m devtrip_scale ", 1) \
        if line.startswith("devscale ") else line
    proc = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, text=True,
                          capture_output=True, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.stdout.flush()
    if proc.returncode != 0:
        print(f"(exit code {proc.returncode})", flush=True)
    return proc


def results(redis_url: str) -> list[dict[str, str]]:
    import redis

    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        return [fields for _, fields in r.xrange(RESULTS)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.workers_sandbox",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".sandbox-workers")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir.absolute()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    began = time.monotonic()

    print("starting Redis and the cluster (KWOK nodes) on loopback…", flush=True)
    redis_server = Redis(workdir / "redis").start()
    cp: ControlPlane | None = None
    server: subprocess.Popen[bytes] | None = None
    logs: PodLogs | None = None
    try:
        cp = ControlPlane(workdir / "controlplane").start()
        kubeconfig = cp.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        cp.api("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        certificate(workdir)
        api_port, health_port = free_port(), free_port()
        config = workers_config(workdir, redis_server.url, api_port)
        pipeline = sandbox_pipeline(workdir)
        token = secrets.token_hex(24)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "DEVSCALE_API_TOKEN": token,
               "DEVSCALE_SERVER": f"localhost:{api_port}", "DEVSCALE_WORKERS_CONFIG": str(config)}
        for name in ("NAMESPACE", "DEBUG"):
            env.pop(name, None)

        serve_log = workdir / "serve.log"
        print(f"\n$ devscale workers serve -c {config} --listen 127.0.0.1:{health_port} &"
              f"     # gRPC API on localhost:{api_port} (TLS, token); its log: {serve_log}",
              flush=True)
        with serve_log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "devtrip_scale", "workers", "serve", "-c", str(config),
                 "--listen", f"127.0.0.1:{health_port}"],
                env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{health_port}/healthz",
                                     timeout=2).status_code == 200,
                   "devscale workers serve ready", timeout=60,
                   alive=lambda: None if server is None or server.poll() is None
                   else serve_log.read_text(errors="replace")[-3000:])
        logs = PodLogs(cp).start()
        print(f"ready after {time.monotonic() - began:.0f}s", flush=True)

        # the seed's request, through the stream
        shell(f"devscale workers status -c {config}", env, workdir)
        timeline = Timeline(cp)
        shell(f"redis-cli -u {redis_server.url} XADD {STREAM} '*' type scale_up pod_count 3 "
              f"task_id {TASK}", env, workdir)
        wait_until(lambda: sum(p["status"].get("phase") == "Running" for p in pods(cp)) == 3,
                   f"the 3 pods of {TASK} running", timeout=60)
        shell(f"devscale workers status -c {config} {TASK}", env, workdir)
        wait_until(lambda: any(r.get("task_id") == TASK for r in results(redis_server.url)),
                   f"the result of {TASK}", timeout=90)
        print(f"\nthe worker pods of {TASK} as they came and went (the server watches them, "
              "reads their logs, deletes them):")
        print("\n".join(timeline.stop()), flush=True)
        shell(f"redis-cli -u {redis_server.url} XRANGE {RESULTS} - +", env, workdir)
        shell(f"cat {workdir / 'worker-logs' / f'{TASK}.log'}", env, workdir)

        # a pipeline, through the gRPC API
        ca = workdir / "api.pem"
        run = shell(f"devscale pipeline run {pipeline} --server localhost:{api_port} "
                    f"--ca {ca} --build-id {BUILD}", env, workdir)
        shell(f"devscale pipeline logs {BUILD} --server localhost:{api_port} --ca {ca}", env,
              workdir)
        code = run.returncode
        print(f"\nthe worker sandbox took {time.monotonic() - began:.0f}s", flush=True)
        if args.keep:
            print(f"\nThe worker sandbox keeps running (Ctrl-C stops it). In another shell:\n"
                  f"  export KUBECONFIG={kubeconfig}\n"
                  f"  export DEVSCALE_WORKERS_CONFIG={config}\n"
                  f"  export DEVSCALE_SERVER=localhost:{api_port}\n"
                  f"  export DEVSCALE_API_TOKEN={token}\n"
                  f"  redis-cli -u {redis_server.url} XADD {STREAM} '*' type scale_up "
                  f"pod_count 2 task_id try-1\n"
                  f"  devscale workers submit --pod-count 2 --task-id try-2\n"
                  f"  sleep 2; devscale workers status     # their pods run {TASK_SECONDS} s\n"
                  f"  kubectl get pods -n {NAMESPACE}\n"
                  f"  devscale pipeline run {pipeline} --ca {ca} --build-id ci-2\n"
                  f"  devscale pipeline status ci-2 --ca {ca}\n"
                  f"  devscale pipeline logs ci-2 --ca {ca}\n"
                  f"  redis-cli -u {redis_server.url} XRANGE {RESULTS} - +\n"
                  f"The server's log: {serve_log}; its metrics: "
                  f"http://127.0.0.1:{health_port}/metrics\n", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return code
    finally:
        if logs is not None:
            logs.stop()
        stop_process(server)
        if cp is not None:
            cp.stop()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
