"""`devscale pipeline run | status | logs | cancel`: the gRPC API's client on the command line.

`run` sends a pipeline file and follows the build: progress and logs arrive on two streams (each
read in its own thread, both feeding one queue), the main thread draws them: a live view on a
terminal, plain lines elsewhere, JSON lines with `-o json`. The exit code is the build's result.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devtrip_scale.cli._common import debugging, err, example, guard, print_json
from devtrip_scale.core.errors import ApiError, ConfigError, ExitCode, PipelineFailed

if TYPE_CHECKING:
    from rich.console import Console

    from devtrip_scale.workers.client import ApiClient, Stream
    from devtrip_scale.workers.live import LiveState, LogRecord, Progress

app = typer.Typer(
    help="Run CI/CD pipelines on the workers' gRPC API, live. The API is `devscale workers "
    "serve`'s; the pipeline runs there and is followed here.",
    no_args_is_help=True)

LOG_DRAIN_SECONDS = 3.0   # after the build ends, how long the log stream may take to catch up
TICK_SECONDS = 0.25       # the live view's redraw when nothing arrives (durations move on)


class PipelineOutput(StrEnum):
    """How the pipeline commands print."""

    table = "table"
    json = "json"


ServerOption = Annotated[list[str], typer.Option(
    "--server", envvar="DEVSCALE_SERVER", metavar="<host:port>",
    help="The gRPC API of `devscale workers serve` (TLS). Several replicas: repeat it "
    "(--server a:50051 --server b:50051) or separate them with commas (a:50051,b:50051); a "
    "call or stream that finds one gone goes on on the next; a broken stream gives up only "
    "after 60s without a new message.")]
CaOption = Annotated[Path | None, typer.Option(
    "--ca", metavar="<file>", dir_okay=False,
    help="PEM file of the CA that signed the server's certificate (default: the system's "
    "trust store).")]
CertOption = Annotated[Path | None, typer.Option(
    "--cert", metavar="<file>", dir_okay=False,
    help="Client certificate (PEM) for mTLS; needs --key.")]
KeyOption = Annotated[Path | None, typer.Option(
    "--key", metavar="<file>", dir_okay=False, help="The client certificate's key (PEM).")]
TokenEnvOption = Annotated[str, typer.Option(
    "--token-env", metavar="<name>",
    help="The environment variable holding the API token (sent as a bearer token).")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", min=0.1, metavar="<seconds>",
    help="Deadline of a single request (streams have none).")]
OutputOption = Annotated[PipelineOutput, typer.Option(
    "--output", "-o", help="table for people, json for machines (JSON lines for streams).")]
BuildArgument = Annotated[str, typer.Argument(help="The build id.", metavar="BUILD")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an unexpected error, print its traceback (also DEBUG=1).")]


def _quiet_grpc(debug: bool) -> None:
    """gRPC's C core logs handshake failures and the like on stderr by itself (`I1204 …
    ssl_transport_security.cc …`); devscale says what went wrong in its own line. Silent unless
    --debug; read once, when grpc is first imported, so this runs before that."""
    if debugging(debug):
        return
    os.environ["GRPC_VERBOSITY"] = "NONE"
    os.environ.pop("GRPC_TRACE", None)


def _connect(server: list[str], ca: Path | None, cert: Path | None, key: Path | None,
             token_env: str, timeout: float, debug: bool = False) -> ApiClient:
    _quiet_grpc(debug)
    from devtrip_scale.workers.client import ApiClient

    return ApiClient(server, ca_file=ca, cert_file=cert, key_file=key,
                     token=os.environ.get(token_env) or None, token_env=token_env,
                     timeout=timeout)


def _warn(text: str) -> None:
    err.print(f"devscale: warning: {text}", style="yellow", markup=False)


def _json_line(document: dict[str, Any]) -> None:
    import json

    print(json.dumps(document), flush=True)


def _stdout() -> Console:
    from devtrip_scale.scaling.render import console

    return console(sys.stdout)


# ---------------------------------------------------------------- following a build


class _Reader(threading.Thread):
    """Reads one stream into the queue as (kind, item); then (kind + "-end", None), or
    (kind + "-error", the exception)."""

    def __init__(self, kind: str, stream: Iterable[Any], events: queue.Queue[tuple[str, Any]]
                 ) -> None:
        super().__init__(name=f"devscale-{kind}", daemon=True)
        self.kind = kind
        self.stream = stream
        self.events = events

    def run(self) -> None:
        try:
            for item in self.stream:
                self.events.put((self.kind, item))
        except Exception as e:   # handed to the main thread, which decides
            self.events.put((f"{self.kind}-error", e))
        else:
            self.events.put((f"{self.kind}-end", None))


class _Follower:
    """Draws a build from its progress (and log) streams until it ends; returns its state."""

    def __init__(self, client: ApiClient, output: PipelineOutput, logs: bool) -> None:
        from devtrip_scale.workers.live import LiveState

        self.client = client
        self.output = output
        self.want_logs = logs
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.state: LiveState = LiveState()
        self.streams: list[Stream[Any]] = []
        self.live = output is PipelineOutput.table and sys.stdout.isatty()
        self.logs_started = False
        self.log_done = False
        self.log_lines = 0
        self.log_stream: Stream[LogRecord] | None = None
        self.ended: float | None = None    # monotonic time the progress stream ended

    def warn(self, text: str) -> None:
        self.events.put(("warning", text))

    def cancel(self) -> None:
        for stream in self.streams:
            stream.cancel()

    def follow(self, progress: Stream[Progress]) -> LiveState:
        self.streams.append(progress)
        _Reader("progress", progress, self.events).start()
        # the logs start with the first progress message (_handle), not before: a log call
        # for a --build-id that ExecutePipeline has not created yet is answered NOT_FOUND
        try:
            if self.live:
                self._follow_live()
            else:
                self._follow_lines()
        finally:
            self.cancel()
        return self.state

    def _start_logs(self, build_id: str) -> None:
        if self.logs_started or not self.want_logs:
            return
        self.logs_started = True
        stream = self.log_stream = self.client.build_logs(build_id, follow=True,
                                                          on_warning=self.warn)
        self.streams.append(stream)
        _Reader("log", stream, self.events).start()

    def _handle(self, kind: str, item: Any) -> bool:
        """Fold one queued event into the state; True when the build is over (and its logs
        are in or have had their time)."""
        from devtrip_scale.workers.live import log_json, progress_json

        if kind == "progress":
            p: Progress = item
            self.state.apply(p)
            if self.output is PipelineOutput.json:
                _json_line(progress_json(p))
            elif not self.live:
                from devtrip_scale.workers.live import progress_line

                print(progress_line(p), flush=True)
            if self.state.build_id:
                self._start_logs(self.state.build_id)
        elif kind == "log":
            r: LogRecord = item
            self.log_lines += 1
            self.state.add_log(r.line)
            if self.output is PipelineOutput.json:
                _json_line(log_json(r))
            elif not self.live:
                from devtrip_scale.workers.live import log_plain

                print(log_plain(r.line), flush=True)
        elif kind == "warning":
            self.state.warnings.append(item)
            if not self.live:
                _warn(item)
        elif kind == "progress-error":
            raise item
        elif kind == "progress-end":
            if not self.state.done:
                raise ApiError(f"the progress stream of build {self.state.build_id or '?'} "
                               "ended before the build did")
            self.ended = time.monotonic()
        elif kind == "log-error":
            self.state.warnings.append(f"the logs stopped: {item}")
            if not self.live:
                _warn(f"the logs stopped: {item}")
            self.logs_started = True
            self.log_done = True
        elif kind == "log-end":
            self.log_done = True
            self._say_silent()
        return self._over()

    def _say_silent(self) -> None:
        """The build's logs ended without a line: a warning with each silent pod's reason."""
        from devtrip_scale.workers.api.convert import SILENT_POD_KEY

        if self.log_lines or self.log_stream is None:
            return
        why = [v for k, v in self.log_stream.trailers if k == SILENT_POD_KEY]
        if not why:
            return
        # one line on a screen: the reason without the pod it names (`… in pod "ns/w-…"`)
        reasons = {v.partition(": ")[2].partition(' in pod "')[0] for v in why}
        first = why[0].partition(": ")[2].partition(' in pod "')[0]
        more = f" (and {len(reasons) - 1} other reason(s): see `devscale pipeline logs " \
            f"{self.state.build_id}`)" if len(reasons) > 1 else ""
        self._handle("warning", f"{len(why)} pod{'s' if len(why) > 1 else ''} wrote no log "
                                f"line: {first}{more}")

    def _over(self) -> bool:
        if self.ended is None:
            return False
        if self.log_done or not self.logs_started:
            return True
        return time.monotonic() - self.ended > LOG_DRAIN_SECONDS

    def _next(self) -> tuple[str, Any] | None:
        try:
            return self.events.get(timeout=TICK_SECONDS)
        except queue.Empty:
            return None

    def _follow_lines(self) -> None:
        while True:
            event = self._next()
            if event is None:
                if self._over():
                    return
                continue
            if self._handle(*event):
                return

    def _follow_live(self) -> None:
        from rich.live import Live

        from devtrip_scale.workers.live import view

        console = _stdout()
        with Live(view(self.state, time.time()), console=console, auto_refresh=False,
                  transient=True) as live:
            while True:
                event = self._next()
                over = self._over() if event is None else self._handle(*event)
                live.update(view(self.state, time.time()), refresh=True)
                if over:
                    return


def _result(state: LiveState, output: PipelineOutput, repeat_warnings: bool) -> int:
    """The end of a followed build: the summary (or the JSON result line); exit 0 or
    PipelineFailed. `repeat_warnings`: the live view's warnings vanished with it."""
    from devtrip_scale.workers.live import result_json, stage_tree
    from devtrip_scale.workers.progress import BuildState

    if output is PipelineOutput.json:
        _json_line(result_json(state))
    else:
        out = _stdout()
        out.print(stage_tree(state, time.time()))
        for warning in state.warnings if repeat_warnings else ():
            _warn(warning)
    if state.state is BuildState.SUCCEEDED:
        if output is PipelineOutput.table:
            _stdout().print(state.outcome(), style="bold green", markup=False)
        return 0
    raise PipelineFailed(state.outcome())


def _connection_args(server: list[str], ca: Path | None, cert: Path | None,
                     key: Path | None, token_env: str) -> list[str]:
    """The options that reach the server again as the user reached it: the addresses (one
    `--server` each), the CA, the client certificate, and where the token comes from (its
    variable's name, never the token)."""
    from devtrip_scale.workers.client import server_addresses

    args = [word for address in server_addresses(server) for word in ("--server", address)]
    for option, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
        if path is not None:
            args += [option, str(path)]
    return [*args, "--token-env", token_env]


def _detached(state: LiveState, output: PipelineOutput, file: Path, build_id: str,
              connection: list[str]) -> int:
    """Ctrl-C while following: the build goes on; say how to follow it again, in commands
    that work when pasted (they carry the server, CA and token source the user gave)."""
    import shlex

    from devtrip_scale.workers.live import result_json

    build = state.build_id or build_id or "?"
    if output is PipelineOutput.json:
        _json_line({**result_json(state), "exitCode": int(ExitCode.INTERRUPTED)})

    if build == "?":
        err.print("devscale: detached before the server named the build: it may have started; "
                  "next time give --build-id NAME to be able to follow it again",
                  style="yellow", markup=False)
        return int(ExitCode.INTERRUPTED)

    def command(label: str, *words: str) -> str:
        """The label, then the command as a shell reads it when pasted: the connection on a
        continuation line, so that a terminal of 80 columns does not cut it mid-word."""
        return (f"  {label}:\n    {shlex.join(['devscale', 'pipeline', *words])} \\\n"
                f"      {shlex.join(connection)}")

    err.print("\n".join([
        f"devscale: detached from build {build}; it goes on on the server.",
        command("follow it again", "run", str(file), "--build-id", build),
        command("its logs", "logs", build, "--follow"),
        command("cancel it", "cancel", build)]), style="yellow", markup=False)
    return int(ExitCode.INTERRUPTED)


def _json_result_failure(state: Callable[[], LiveState | None]
                         ) -> Callable[[ExitCode, str], None]:
    """`-o json`: a failure that left no result line still ends with one."""

    def write(code: ExitCode, message: str) -> None:
        current = state()
        if code is ExitCode.PIPELINE:
            return   # the result line is out already
        _json_line({"type": "result", "buildId": current.build_id if current else "",
                    "state": current.state.value if current else None,
                    "exitCode": int(code), "error": message})

    return write


# ---------------------------------------------------------------- commands


@app.command("run", epilog=example(
    "DEVSCALE_API_TOKEN=… devscale pipeline run ci.yaml --server ci.example.com:50051 "
    "--ca ca.pem"))
def pipeline_run(
    file: Annotated[Path, typer.Argument(help="The pipeline YAML file.", dir_okay=False,
                                         metavar="FILE")],
    server: ServerOption,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    token_env: TokenEnvOption = "DEVSCALE_API_TOKEN",
    build_id: Annotated[str | None, typer.Option(
        "--build-id", metavar="<id>", help="Name the build (an existing build of that name is "
        "attached to, not run again).")] = None,
    output: OutputOption = PipelineOutput.table,
    no_logs: Annotated[bool, typer.Option(
        "--no-logs", help="Progress only, no log lines of the stages.")] = False,
    timeout: TimeoutOption = 30.0,
    debug: DebugOption = False,
) -> None:
    """Run a pipeline on the server and follow it live.

    The live view shows its stages and their logs.

    Exit codes: 0 the build succeeded, 8 it failed or was cancelled, 2 a bad pipeline file,
    9 the API refused the call or could not be reached, 130 detached with Ctrl-C (the build
    goes on).
    """
    follower: _Follower | None = None

    def body() -> int:
        nonlocal follower
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{file}: cannot read it: "
                              f"{getattr(e, 'strerror', None) or e}") from None
        with _connect(server, ca, cert, key, token_env, timeout, debug) as client:
            follower = _Follower(client, output, logs=not no_logs)
            stream = client.execute(text, str(file), build_id or "", on_warning=follower.warn)
            try:
                state = follower.follow(stream)
            except KeyboardInterrupt:
                follower.cancel()
                return _detached(follower.state, output, file, build_id or "",
                                 _connection_args(server, ca, cert, key, token_env))
            return _result(state, output, repeat_warnings=follower.live)

    guard(debug, body, _json_result_failure(lambda: follower.state if follower else None)
           if output is PipelineOutput.json else None)


@app.command("status", epilog=example(
    "devscale pipeline status build-42 --server ci.example.com:50051 -o json"))
def pipeline_status(
    build: BuildArgument,
    server: ServerOption,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    token_env: TokenEnvOption = "DEVSCALE_API_TOKEN",
    output: OutputOption = PipelineOutput.table,
    timeout: TimeoutOption = 30.0,
    debug: DebugOption = False,
) -> None:
    """A build's state and its stages, now.

    Exit codes: 0 shown (whatever the build's state), 9 the API refused or could not be reached.
    """

    def body() -> int:
        with _connect(server, ca, cert, key, token_env, timeout, debug) as client:
            _show_status(client.status(build), output)
        return 0

    guard(debug, body)


def _show_status(status: Any, output: PipelineOutput) -> None:
    from devtrip_scale.workers.client import status_state
    from devtrip_scale.workers.live import stage_tree, status_json

    state = status_state(status)
    if output is PipelineOutput.json:
        print_json(status_json(state, status.last_sequence))
    else:
        _stdout().print(stage_tree(state, time.time()))


@app.command("logs", epilog=example(
    "devscale pipeline logs build-42 --server ci.example.com:50051 --follow --stage test"))
def pipeline_logs(
    build: BuildArgument,
    server: ServerOption,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new lines until the build ends.")] = False,
    stage: Annotated[list[str] | None, typer.Option(
        "--stage", metavar="<name>", help="Only this stage's lines (repeatable).")] = None,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    token_env: TokenEnvOption = "DEVSCALE_API_TOKEN",
    output: OutputOption = PipelineOutput.table,
    timeout: TimeoutOption = 30.0,
    debug: DebugOption = False,
) -> None:
    """A build's log lines, tagged with stage and pod.

    Merged by time across its stages' pods.

    Exit codes: 0 printed, 9 the API refused or could not be reached, 130 interrupted.
    """

    def body() -> int:
        from devtrip_scale.workers.live import log_json, log_plain

        with _connect(server, ca, cert, key, token_env, timeout, debug) as client:
            stream = client.build_logs(build, follow=follow, stages=tuple(stage or ()),
                                       on_warning=_warn)
            printed = 0
            try:
                for record in stream:
                    printed += 1
                    if output is PipelineOutput.json:
                        _json_line(log_json(record))
                    else:
                        print(log_plain(record.line), flush=True)
            finally:
                stream.cancel()
            if not printed:
                _say_empty(build, stage or [], stream.trailers)
        return 0

    guard(debug, body)


def _say_empty(build: str, stages: list[str], trailers: tuple[tuple[str, str], ...]) -> None:
    """No log line: say so (on stderr, stdout stays empty), with the reason the server had
    for each pod (the API's answer when it read the pod's log)."""
    from devtrip_scale.workers.api.convert import SILENT_POD_KEY

    what = f"build {build}" + (f" (stage {', '.join(stages)})" if stages else "")
    why = [value for key, value in trailers if key == SILENT_POD_KEY]
    if not why:
        err.print(f"devscale: {what} has no log lines (yet)", style="yellow", markup=False)
        return
    err.print(f"devscale: {what} has no log lines:", style="yellow", markup=False)
    for line in why:
        err.print(f"  {line}", style="yellow", markup=False)


@app.command("cancel", epilog=example(
    "devscale pipeline cancel build-42 --server ci.example.com:50051"))
def pipeline_cancel(
    build: BuildArgument,
    server: ServerOption,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    token_env: TokenEnvOption = "DEVSCALE_API_TOKEN",
    output: OutputOption = PipelineOutput.table,
    timeout: TimeoutOption = 30.0,
    debug: DebugOption = False,
) -> None:
    """Cancel a build.

    Its running stages are cancelled, the rest skipped.

    Exit codes: 0 cancelled (or already over: its state is shown), 9 the API refused or could
    not be reached.
    """

    def body() -> int:
        with _connect(server, ca, cert, key, token_env, timeout, debug) as client:
            _show_status(client.cancel(build), output)
        return 0

    guard(debug, body)
