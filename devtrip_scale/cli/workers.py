"""`devscale workers serve|submit|status`: event-driven workers from scale requests on a Redis
Stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from devtrip_scale.cli._common import (
    ContextOption,
    DebugOption,
    KubeconfigOption,
    Output,
    OutputOption,
    WorkersConfigOption,
    err,
    example,
    guard,
    parse_listen,
    print_json,
    run_async,
)
from devtrip_scale.core.errors import ConfigError, DevscaleError

app = typer.Typer(help="Event-driven workers: scale requests become worker pods. They come "
                  "from a Redis Stream or the gRPC API.", no_args_is_help=True)


@app.command("serve", epilog=example(
    "devscale workers serve -c workers.yaml --listen 127.0.0.1:8080"))
def workers_serve(
    config: WorkersConfigOption = Path("workers.yaml"),
    listen: Annotated[str, typer.Option(
        help="host:port of /healthz and /metrics.", metavar="<host:port>")] = "0.0.0.0:8080",
    consumer: Annotated[str | None, typer.Option(
        metavar="<name>", help="This replica's consumer name in the group (default: the "
        "config's, else the host name). Keep it stable across restarts to re-read its own "
        "pending entries.")
    ] = None,
    api: Annotated[bool | None, typer.Option(
        "--api/--no-api", help="Serve the gRPC API (ScaleUp, ScaleDown, GetWorkerStatus, "
        "pipelines, logs) over TLS. Default: the config's api.enabled.")] = None,
    api_listen: Annotated[str | None, typer.Option(
        "--api-listen", metavar="<host:port>", help="host:port of the gRPC API (default: "
        "the config's api.listen, 0.0.0.0:50051); implies --api.")] = None,
    intake: Annotated[bool, typer.Option(
        "--intake/--no-intake", help="Read scale requests from the Redis Stream. With "
        "--no-intake only the gRPC API starts work (Redis still keeps task state).")] = True,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Run worker pods for scale requests and pipelines until SIGTERM.

    Scale requests come from the Redis Stream, the gRPC API or both; pipelines run as DAGs of
    such pods.

    SIGTERM: the gRPC health service says NOT_SERVING at once, no new request or build is
    taken, running builds are handed over to the other replicas (their leases released,
    nothing cancelled) and in-flight requests finish within
    shutdown_grace_seconds; unread requests stay on the stream for other replicas.

    Exit codes: 0 stopped, 2 config error, 4 Kubernetes API error, 1 internal error.
    """

    def body() -> int:
        import asyncio
        import logging

        from devtrip_scale.kube.aio import AsyncKube
        from devtrip_scale.notify.channels import notifiers_from
        from devtrip_scale.workers.api.server import ApiServer, start_api
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.intake import connect as redis_connect
        from devtrip_scale.workers.server import WorkerServer, serve_http

        host, port = parse_listen(listen)
        settings = load_workers_config(config)
        if api_listen is not None:
            parse_listen(api_listen, flag="--api-listen")
            if api is False:
                raise ConfigError("--api-listen and --no-api contradict each other")
        serve_api = api if api is not None else (api_listen is not None or
                                                 settings.api.enabled)
        if not serve_api and not intake:
            raise ConfigError("--no-intake needs the gRPC API (--api, or api.enabled in the "
                              "config): otherwise nothing would start any work")
        tokens = settings.api.tokens() if serve_api else ()
        otto_token = settings.otto_handler.token() if settings.otto_handler else None
        notifiers = notifiers_from(settings.notify)
        password = settings.redis_password()
        logging.basicConfig(level=logging.WARNING, format="%(message)s")

        def say(text: str) -> None:
            err.print(f"{datetime.now(UTC):%H:%M:%S} {text}", markup=False)

        async def main() -> int:
            import signal as signals

            kube = AsyncKube.connect(kubeconfig, context, settings.namespace,
                                     writes_per_second=settings.limits.api_writes_per_second,
                                     write_burst=settings.limits.api_write_burst)
            redis = redis_connect(settings.redis, password)
            server = WorkerServer(settings, kube, redis, consumer=consumer,
                                  notifiers=notifiers, say=say, intake=intake)
            grpc_api: ApiServer | None = None
            stopping: set[asyncio.Future[None]] = set()

            def stop() -> None:
                server.stop.set()
                if grpc_api is not None:    # health says NOT_SERVING before anything stops
                    stopping.add(asyncio.ensure_future(grpc_api.not_serving()))

            loop = asyncio.get_running_loop()
            for sig in (signals.SIGTERM, signals.SIGINT):
                loop.add_signal_handler(sig, stop)
            try:
                http = await serve_http(server, host, port)
            except OSError as e:
                await kube.aclose()
                await redis.aclose()
                raise ConfigError(f"--listen {listen}: cannot listen there: "
                                  f"{e.strerror or e}") from None
            otto = None
            if settings.otto_handler is not None:   # push logs and worker states to it
                from devtrip_scale.workers.ottohandler import OttoForwarder

                otto = OttoForwarder.attach(server, settings.otto_handler, otto_token, say)
            try:
                if serve_api:
                    grpc_api = await start_api(server, settings.api, tokens, listen=api_listen,
                                               say=say)
                say(f"devscale workers: namespace {settings.namespace}, consumer "
                    f"{server.consumer}, max {settings.limits.max_workers} workers, stream "
                    f"intake {'on' if intake else 'off'}, gRPC API "
                    f"{grpc_api.address if grpc_api else 'off'}, /healthz and /metrics on "
                    f"{listen}")
                if grpc_api is not None:
                    from devtrip_scale.cli.config import WORKER_TEMPLATE_NOTE

                    say(f"note: {WORKER_TEMPLATE_NOTE}")
                await server.run()
            finally:
                if grpc_api is not None:     # the streams' journals are closed by now
                    await grpc_api.shutdown(5)
                if otto is not None:
                    await otto.aclose()
                http.close()
                await kube.aclose()
                await redis.aclose()
            return 0

        from devtrip_scale.workers.profiling import profiled

        return profiled(lambda: int(run_async(main)))

    guard(debug, body)


@app.command("submit", epilog=example(
    "devscale workers submit -c workers.yaml --pod-count 3 --task-id build-42 --meta "
    "branch=main"))
def workers_submit(
    config: WorkersConfigOption = Path("workers.yaml"),
    pod_count: Annotated[int | None, typer.Option(
        "--pod-count", min=1, help="scale_up: how many worker pods.")] = None,
    task_id: Annotated[str | None, typer.Option(
        "--task-id", metavar="<task>", help="The task (default for scale_up: the entry's "
        "ID).")] = None,
    cancel: Annotated[bool, typer.Option(
        "--cancel", help="scale_down: cancel --task-id (pending pods, then running ones).")
    ] = False,
    meta: Annotated[list[str] | None, typer.Option(
        "--meta", metavar="<key=value>", help="Metadata for the pods (env and labels); "
        "repeatable.")] = None,
) -> None:
    """Put a scale request on the Redis Stream and print its ID.

    A scale_up of --pod-count pods, or with --cancel a scale_down of --task-id.
    """

    def body() -> int:
        from redis.exceptions import RedisError

        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.intake import connect_sync
        from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, encode, parse

        settings = load_workers_config(config)
        pairs = []
        for item in meta or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--meta {item!r}: write key=value")
            pairs.append((key, value))
        if cancel:
            if task_id is None or pod_count is not None or pairs:
                raise ConfigError("--cancel takes --task-id only")
            request: ScaleUp | ScaleDown = ScaleDown("-", task_id)
        else:
            if pod_count is None:
                raise ConfigError("give --pod-count (or --cancel --task-id TASK)")
            request = ScaleUp("-", task_id or "-", pod_count, tuple(sorted(pairs)))
        fields = encode(request)
        if task_id is None:
            fields.pop("task_id", None)
        checked = parse("0-0", fields, settings.limits.pod_count_limit)
        if isinstance(checked, Rejected):
            raise ConfigError(f"the request would be dead-lettered: {checked.reason}")
        client = connect_sync(settings.redis, settings.redis_password())
        try:
            entry = client.xadd(settings.redis.stream, dict(fields))
        except RedisError as e:
            raise DevscaleError(f"cannot add to {settings.redis.stream} at "
                                f"{settings.redis.safe_url()}: {e}") from None
        finally:
            client.close()
        print(entry)
        return 0

    guard(False, body)


@app.command("status", epilog=example("devscale workers status -c workers.yaml "
                                               "build-42"))
def workers_status(
    task: Annotated[str | None, typer.Argument(help="Only this task.")] = None,
    config: WorkersConfigOption = Path("workers.yaml"),
    output: OutputOption = Output.table,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Tasks and their worker pods, from the cluster (read-only)."""

    def body() -> int:
        from kubernetes import client

        from devtrip_scale.core.trace import Trace
        from devtrip_scale.kube import TIMEOUT, connect, request
        from devtrip_scale.workers import SELECTOR, TASK_LABEL
        from devtrip_scale.workers.config import load_workers_config
        from devtrip_scale.workers.status import tasks
        from devtrip_scale.workers.tasks import task_key

        settings = load_workers_config(config)
        ns = settings.namespace
        selector = SELECTOR + (f",{TASK_LABEL}={task_key(task)}" if task else "")
        api = connect(kubeconfig, context)
        try:
            raw = request(Trace(), "list", "pods", ns, None, lambda: client.CoreV1Api(
                api).list_namespaced_pod(ns, label_selector=selector, _preload_content=False,
                                         _request_timeout=TIMEOUT).data)
        finally:
            api.close()
        found = tasks(json.loads(raw).get("items") or [])
        if output is Output.json:
            print_json({"namespace": ns, "tasks": found})
            return 0
        if not found:
            print(f"no worker pods in namespace {ns}" + (f" for task {task}" if task else ""))
            return 0
        for t in found:
            phases = ", ".join(f"{n} {p}" for p, n in sorted(t["phases"].items()))
            print(f"task {t['taskId']}: {len(t['pods'])} pod(s): {phases}")
            for p in t["pods"]:
                code = "" if p["exitCode"] is None else f" exit {p['exitCode']}"
                print(f"  {p['name']}  worker {p['index']} attempt {p['attempt']}  "
                      f"{p['phase']}{code}")
        return 0

    guard(False, body)
