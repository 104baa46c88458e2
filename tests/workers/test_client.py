"""workers/client.py and `devscale pipeline …` against a real gRPC server over TLS on loopback:
the bearer token on every call (or mTLS with a client certificate); UNAUTHENTICATED,
UNAVAILABLE and INVALID_ARGUMENT mapped to exit codes with advice and no token in any text; a
progress stream resumed where it broke (also across a real server restart) with every message
exactly once, `missed` warned about, a silent gap refused; `pipeline run -o json` writing JSON
lines and exiting with the build's result; Ctrl-C detaching.

The server is grpc.aio with a scripted servicer (the real servicers are tested beside them): it
checks the token as the real one does and plays back the messages each test gives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from typer.testing import CliRunner

from devtrip_scale.cli.pipeline import app as pipeline_app
from devtrip_scale.core.errors import ApiError, ConfigError
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from devtrip_scale.workers.client import ApiClient, server_addresses

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests"
BUILD = "build-42"
T0 = 1_800_000_000
R, OK, FAIL = pb.PIPELINE_STATE_RUNNING, pb.PIPELINE_STATE_SUCCEEDED, pb.PIPELINE_STATE_FAILED


@dataclass(frozen=True)
class Abort:
    """A scripted end of a call with a status."""

    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Hang:
    """A scripted pause: the call stays open (until the test restarts the server)."""

    released: threading.Event


def progress(seq: int, state: int = R, stage: str = "", stage_state: int = 0, *,
             missed: int = 0, message: str = "", attempt: int = 1,
             stages: tuple[pb.StageStatus, ...] = ()) -> pb.PipelineProgress:
    m = pb.PipelineProgress(sequence=seq, build_id=BUILD, pipeline_state=state, stage=stage,
                            stage_state=stage_state, attempt=attempt if stage else 0,
                            message=message, missed=missed, stages=stages)
    m.time.seconds = T0 + seq
    return m


def entry(seq: int, stage: str, text: str) -> pb.LogEntry:
    m = pb.LogEntry(sequence=seq, build_id=BUILD, stage=stage, worker=f"{BUILD}-{stage}-0-1",
                    task_id=f"{BUILD}-{stage}", stream="stdout", message=text)
    m.time.seconds = T0 + seq
    return m


def build(n: int, final: int = OK) -> list[pb.PipelineProgress]:
    """Progress 1..n: the plan, stages running, the last one with `final`."""
    plan = (pb.StageStatus(name="lint", state=pb.STAGE_STATE_WAITING),
            pb.StageStatus(name="test", state=pb.STAGE_STATE_WAITING, needs=["lint"]))
    out = [progress(1, stages=plan)]
    out += [progress(i, stage="lint", stage_state=pb.STAGE_STATE_RUNNING, message=f"#{i}")
            for i in range(2, n)]
    out.append(progress(n, final))
    return out


@dataclass
class Scripted(pb_grpc.OttoscalerServiceServicer, pb_grpc.LogStreamingServiceServicer):
    """Plays back, per call, the messages a test queued; records what it was sent."""

    executions: list[list[Any]] = field(default_factory=list)
    logs: list[list[Any]] = field(default_factory=list)
    status: pb.PipelineStatus | Abort | None = None
    requests: list[tuple[str, Any, str | None]] = field(default_factory=list)

    async def _auth(self, method: str, request: Any, context: Any) -> None:
        headers = dict(context.invocation_metadata())
        self.requests.append((method, request, headers.get("authorization")))
        if context.peer_identities():   # a client certificate the TLS layer verified
            return
        if headers.get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong bearer token")

    async def _play(self, script: list[Any], context: Any) -> Any:
        for item in script:
            if isinstance(item, Abort):
                await context.abort(item.code, item.details)
            elif isinstance(item, Hang):
                while not item.released.is_set():
                    await asyncio.sleep(0.05)
            else:
                yield item

    async def ExecutePipeline(self, request: Any, context: Any) -> Any:
        await self._auth("ExecutePipeline", request, context)
        async for item in self._play(self.executions.pop(0), context):
            yield item

    async def StreamBuildLogs(self, request: Any, context: Any) -> Any:
        await self._auth("StreamBuildLogs", request, context)
        async for item in self._play(self.logs.pop(0) if self.logs else [], context):
            yield item

    async def GetPipelineStatus(self, request: Any, context: Any) -> Any:
        await self._auth("GetPipelineStatus", request, context)
        if isinstance(self.status, Abort):
            await context.abort(self.status.code, self.status.details)
        return self.status

    async def CancelPipeline(self, request: Any, context: Any) -> Any:
        await self._auth("CancelPipeline", request, context)
        return self.status


@dataclass
class Tls:
    ca_file: Path
    key: bytes
    chain: bytes
    client_cert: Path      # a client certificate from the same CA, for mTLS
    client_key: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    client = ca.issue_cert("ci-runner@example.com")
    client.cert_chain_pems[0].write_to_path(str(path.with_name("client.pem")))
    client.private_key_pem.write_to_path(str(path.with_name("client.key")))
    return Tls(path, cert.private_key_pem.bytes(),
               b"".join(blob.bytes() for blob in cert.cert_chain_pems),
               path.with_name("client.pem"), path.with_name("client.key"))


class Loopback:
    """A grpc.aio server with TLS on 127.0.0.1, in its own thread and event loop."""

    def __init__(self, servicer: Scripted, tls: Tls, port: int = 0, mtls: bool = False) -> None:
        self.servicer = servicer
        self.tls = tls
        self.mtls = mtls   # require a client certificate signed by the test CA
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None
        self.port = self._run(self._start(port))

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=20)

    async def _start(self, port: int) -> int:
        self.server = grpc.aio.server()
        pb_grpc.add_OttoscalerServiceServicer_to_server(self.servicer, self.server)
        pb_grpc.add_LogStreamingServiceServicer_to_server(self.servicer, self.server)
        credentials = grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.chain)], root_certificates=self.tls.ca_file.read_bytes(),
            require_client_auth=self.mtls)
        bound: int = self.server.add_secure_port(f"127.0.0.1:{port}", credentials)
        await self.server.start()
        return bound

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def restart(self) -> None:
        """Stop (every open stream breaks) and start again on the same port."""
        self._run(self.server.stop(0))
        self.port = self._run(self._start(self.port))

    def close(self) -> None:
        self._run(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def servicer() -> Scripted:
    return Scripted()


@pytest.fixture
def server(servicer: Scripted, tls: Tls) -> Iterator[Loopback]:
    loopback = Loopback(servicer, tls)
    yield loopback
    loopback.close()


def connect(server: Loopback, token: str | None = TOKEN, **options: Any) -> ApiClient:
    return ApiClient(server.address, ca_file=server.tls.ca_file, token=token, timeout=10,
                     patience=0.3, backoff=0.05, **options)


def sequences(items: list[Any]) -> list[int]:
    return [i.sequence for i in items]


# ---------------------------------------------------------------- token and errors


def test_the_bearer_token_goes_with_every_call(server: Loopback, servicer: Scripted) -> None:
    servicer.executions.append(build(3))
    servicer.logs.append([entry(1, "lint", "hello")])
    servicer.status = pb.PipelineStatus(build_id=BUILD, state=OK)
    with connect(server) as client:
        assert sequences(list(client.execute("stages: []", "ci.yaml"))) == [1, 2, 3]
        assert [r.line.text for r in client.build_logs(BUILD)] == ["hello"]
        assert client.status(BUILD).state == OK
        assert client.cancel(BUILD).build_id == BUILD
    assert [(m, auth) for m, _, auth in servicer.requests] == [
        ("ExecutePipeline", f"Bearer {TOKEN}"), ("StreamBuildLogs", f"Bearer {TOKEN}"),
        ("GetPipelineStatus", f"Bearer {TOKEN}"), ("CancelPipeline", f"Bearer {TOKEN}")]
    first = servicer.requests[0][1]
    assert (first.pipeline_yaml, first.file_name, first.build_id) == ("stages: []", "ci.yaml",
                                                                      "")


@pytest.mark.parametrize(("token", "advice"), [
    (None, "no token was sent: set $DEVSCALE_API_TOKEN to the server's API token"),
    ("wrong-token", "the token in $DEVSCALE_API_TOKEN was refused"),
], ids=["no-token", "wrong-token"])
def test_unauthenticated_is_exit_9_naming_the_env_var(
        server: Loopback, servicer: Scripted, token: str | None, advice: str) -> None:
    servicer.executions.append(build(3))
    with connect(server, token=token) as client, pytest.raises(ApiError) as caught:
        list(client.execute("stages: []", "ci.yaml"))
    assert caught.value.exit_code == 9
    assert "UNAUTHENTICATED: missing or wrong bearer token" in str(caught.value)
    assert advice in str(caught.value)
    assert len(servicer.executions) == 1   # refused before the servicer ran anything


def test_a_server_that_echoes_the_token_does_not_get_it_printed(
        server: Loopback, servicer: Scripted) -> None:
    servicer.status = Abort(grpc.StatusCode.PERMISSION_DENIED, f"Bearer {TOKEN} may not read")
    with connect(server) as client, pytest.raises(ApiError) as caught:
        client.status(BUILD)
    assert TOKEN not in str(caught.value)
    assert "PERMISSION_DENIED: Bearer <token> may not read" in str(caught.value)


def test_invalid_argument_from_execute_is_a_config_error_with_the_file_line(
        server: Loopback, servicer: Scripted) -> None:
    why = "ci.yaml:7: stage 'package' needs 'tset', which is not a stage of this pipeline"
    servicer.executions.append([Abort(grpc.StatusCode.INVALID_ARGUMENT, why)])
    with connect(server) as client, pytest.raises(ConfigError) as caught:
        list(client.execute("stages: []", "ci.yaml"))
    assert (caught.value.exit_code, str(caught.value)) == (2, why)


def test_nothing_listening_is_unavailable_with_address_and_tls_advice(tls: Tls) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ApiClient(f"localhost:{port}", ca_file=tls.ca_file, token=TOKEN, timeout=5) as client, \
            pytest.raises(ApiError) as caught:
        client.status(BUILD)
    text = str(caught.value)
    assert f"nothing accepted a connection at localhost:{port} (connection refused)" in text
    assert TOKEN not in text


def test_a_server_certificate_the_client_does_not_trust_is_unavailable(
        server: Loopback, servicer: Scripted) -> None:
    servicer.status = pb.PipelineStatus(build_id=BUILD)
    with ApiClient(server.address, token=TOKEN, timeout=5) as client, \
            pytest.raises(ApiError, match=r"did not verify against the system's trust store "
                          r"\(give --ca FILE, the CA that signed it\) "
                          r"\(CERTIFICATE_VERIFY_FAILED\)"):
        client.status(BUILD)   # the system trust store does not know the test CA
    assert servicer.requests == []


@pytest.mark.parametrize(("options", "message"), [
    ({"cert_file": Path("c.pem")}, "--cert and --key go together"),
    ({"ca_file": Path("/nonexistent/ca.pem")}, "--ca /nonexistent/ca.pem: cannot read it"),
], ids=["cert-without-key", "unreadable-ca"])
def test_bad_connection_options_are_config_errors(options: dict[str, Any], message: str
                                                  ) -> None:
    with pytest.raises(ConfigError, match=message):
        ApiClient("localhost:1", token=TOKEN, **options)


@pytest.mark.parametrize(("given", "addresses"), [
    ("a:1", ["a:1"]),
    ("a:1,b:1", ["a:1", "b:1"]),
    (["a:1", "b:1"], ["a:1", "b:1"]),                       # --server a:1 --server b:1
    (["a:1,b:1", "c:1"], ["a:1", "b:1", "c:1"]),            # both forms at once
    ([" a:1 , b:1,", "b:1", "a:1"], ["a:1", "b:1"]),        # blanks and repeats dropped
    ("dns:///ci.example.com:50051", ["dns:///ci.example.com:50051"]),
], ids=["one", "commas", "repeated", "mixed", "blanks-and-twice", "dns-name"])
def test_server_addresses_from_repeated_and_comma_separated_values(
        given: str | list[str], addresses: list[str]) -> None:
    assert server_addresses(given) == addresses


@pytest.mark.parametrize("given", ["", " , ", [], ["", ","]],
                         ids=["empty", "commas-only", "none", "blank-values"])
def test_no_server_address_is_a_config_error(given: str | list[str]) -> None:
    with pytest.raises(ConfigError, match=r"--server: give the API's host:port .*"
                                          r"--server host:port --server host:port"):
        server_addresses(given)


def test_the_ctrl_c_hints_give_one_server_option_per_address() -> None:
    from devtrip_scale.cli.pipeline import _connection_args

    assert _connection_args(["a:1,b:1", "c:1"], Path("ca.pem"), None, None, "TOKEN_VAR") == [
        "--server", "a:1", "--server", "b:1", "--server", "c:1", "--ca", "ca.pem",
        "--token-env", "TOKEN_VAR"]


def test_pipeline_status_with_server_repeated_skips_a_dead_replica(
        server: Loopback, servicer: Scripted) -> None:
    """`--server DEAD --server LIVE`: the call that finds the first refused goes to the second."""
    servicer.status = pb.PipelineStatus(build_id=BUILD, state=OK)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"localhost:{s.getsockname()[1]}"      # bound, never listening: refused
        result = CliRunner().invoke(
            pipeline_app, ["status", BUILD, "--server", dead, "--server", server.address,
                           "--ca", str(server.tls.ca_file), "-o", "json"],
            env={"DEVSCALE_API_TOKEN": TOKEN, "DEVSCALE_SERVER": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["buildId"] == BUILD
    assert [m for m, _, _ in servicer.requests] == ["GetPipelineStatus"]


# ---------------------------------------------------------------- resuming and continuity


def test_a_stream_broken_after_3_resumes_after_3_and_misses_nothing(
        server: Loopback, servicer: Scripted) -> None:
    messages = build(6, FAIL)
    servicer.executions += [[*messages[:3], Abort(grpc.StatusCode.UNAVAILABLE, "going away")],
                            [messages[2], *messages[3:]]]   # the server repeats #3: dropped
    with connect(server) as client:
        stream = client.execute("stages: []", "ci.yaml")
        got = list(stream)
    assert sequences(got) == [1, 2, 3, 4, 5, 6]
    assert got[-1].event.build_state.value == "failed"
    resumed = servicer.requests[1][1]
    assert (resumed.build_id, resumed.after_sequence, resumed.pipeline_yaml) == (BUILD, 3, "")
    assert stream.resumed == 1 and stream.warnings == []


def test_a_real_server_restart_mid_stream_is_resumed(
        server: Loopback, servicer: Scripted) -> None:
    messages = build(5)
    hang = Hang(threading.Event())
    servicer.executions += [[*messages[:3], hang], messages[3:]]
    got: list[int] = []
    with connect(server) as client:
        stream = client.execute("stages: []", "ci.yaml")
        for p in stream:
            got.append(p.sequence)
            if p.sequence == 3:
                server.restart()     # the open stream breaks: the connection is gone
                hang.released.set()
    assert got == [1, 2, 3, 4, 5]
    assert servicer.requests[-1][1].after_sequence == 3


def test_missed_messages_are_a_visible_warning(server: Loopback, servicer: Scripted) -> None:
    messages = build(7)
    skipped = messages[4]
    skipped.missed = 2
    servicer.executions.append([*messages[:2], skipped, *messages[5:]])
    warnings: list[str] = []
    with connect(server) as client:
        got = list(client.execute("stages: []", "ci.yaml", on_warning=warnings.append))
    assert sequences(got) == [1, 2, 5, 6, 7]
    assert warnings == ["2 progress messages were lost before #5 (the server dropped them: "
                        "this client fell too far behind)"]


def test_a_silent_gap_is_an_error(server: Loopback, servicer: Scripted) -> None:
    messages = build(5)
    servicer.executions.append([messages[0], messages[1], messages[3], messages[4]])
    with connect(server) as client, pytest.raises(ApiError, match="skipped progress messages 3 "
                                                  "without saying so"):
        list(client.execute("stages: []", "ci.yaml"))


def test_resuming_is_bounded_by_time_without_progress(server: Loopback,
                                                      servicer: Scripted) -> None:
    down = Abort(grpc.StatusCode.UNAVAILABLE, "going away")
    servicer.executions += [[*build(5)[:2], down]] + [[down] for _ in range(40)]
    started = time.monotonic()
    with connect(server) as client, pytest.raises(ApiError) as caught:
        list(client.attach(BUILD))
    took = time.monotonic() - started
    assert "times in a row without progress for 0.3s (last: UNAVAILABLE: going away)" in \
        str(caught.value)
    assert f"devscale pipeline status {BUILD}" in str(caught.value)
    calls = [r.after_sequence for _, r, _ in servicer.requests]
    assert calls[:2] == [0, 2] and set(calls[1:]) == {2} and len(calls) >= 4
    assert 0.3 <= took < 3, took


def test_a_break_before_the_build_is_known_is_not_retried(
        server: Loopback, servicer: Scripted) -> None:
    servicer.executions.append([Abort(grpc.StatusCode.UNAVAILABLE, "overloaded")])
    with connect(server) as client, pytest.raises(ApiError, match="UNAVAILABLE: overloaded"):
        list(client.execute("stages: []", "ci.yaml"))   # a retry could start a second build
    assert len(servicer.requests) == 1


# ---------------------------------------------------------------- the command line


def invoke(server: Loopback, *args: str, token: str = TOKEN) -> Any:
    return CliRunner().invoke(pipeline_app, [*args, "--ca", str(server.tls.ca_file)],
                              env={"DEVSCALE_API_TOKEN": token,
                                   "DEVSCALE_SERVER": server.address})


def test_pipeline_run_json_lines_and_exit_8_on_a_failed_build(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("name: ci\nstages: []\n", encoding="utf-8")
    final = progress(5, FAIL, stages=(
        pb.StageStatus(name="lint", state=pb.STAGE_STATE_FAILED, attempt=2, message="exit 1"),
        pb.StageStatus(name="test", state=pb.STAGE_STATE_SKIPPED, needs=["lint"])))
    servicer.executions.append([*build(5)[:4], final])
    servicer.logs.append([entry(1, "lint", "linting"), entry(2, "lint", "E501")])
    result = invoke(server, "run", str(pipeline), "-o", "json")
    assert result.exit_code == 8, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["sequence"] for d in docs if d["type"] == "progress"] == [1, 2, 3, 4, 5]
    assert [d["message"] for d in docs if d["type"] == "log"] == ["linting", "E501"]
    assert docs[-1] == {"type": "result", "buildId": BUILD, "state": "failed", "exitCode": 8,
                        "failedStages": ["lint"], "skippedStages": ["test"], "warnings": []}
    assert "build build-42 failed: stage lint failed; skipped: test" in result.stderr
    request = servicer.requests[0][1]
    assert (request.pipeline_yaml, request.file_name) == ("name: ci\nstages: []\n",
                                                          str(pipeline))
    logs = next(r for m, r, _ in servicer.requests if m == "StreamBuildLogs")
    assert (logs.build_id, logs.follow) == (BUILD, True)


def test_pipeline_run_plain_lines_and_exit_0_on_success(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    servicer.executions.append(build(3))
    result = invoke(server, "run", str(pipeline), "--no-logs")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("#1 build build-42 running")
    assert lines[1].endswith("#2 stage lint running: #2")
    assert lines[-1] == "build build-42 succeeded"
    assert all(m == "ExecutePipeline" for m, _, _ in servicer.requests)


def test_pipeline_run_unauthenticated_exits_9_without_the_token(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    servicer.executions.append(build(3))
    result = invoke(server, "run", str(pipeline), "-o", "json", token="not-the-token")
    assert result.exit_code == 9
    assert "DEVSCALE_API_TOKEN" in result.stderr and "not-the-token" not in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["exitCode"] == 9


def test_pipeline_status_and_cancel_json(server: Loopback, servicer: Scripted) -> None:
    servicer.status = pb.PipelineStatus(
        build_id=BUILD, pipeline="ci", state=pb.PIPELINE_STATE_CANCELLED, last_sequence=9,
        stages=[pb.StageStatus(name="lint", state=pb.STAGE_STATE_CANCELLED, attempt=1)])
    for command in ("status", "cancel"):
        result = invoke(server, command, BUILD, "-o", "json")
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert (doc["buildId"], doc["state"], doc["lastSequence"]) == (BUILD, "cancelled", 9)
        assert [(s["name"], s["state"]) for s in doc["stages"]] == [("lint", "cancelled")]


def test_pipeline_logs_of_a_stage(server: Loopback, servicer: Scripted) -> None:
    servicer.logs.append([entry(3, "test", "ok 1"), entry(8, "test", "ok 2")])
    result = invoke(server, "logs", BUILD, "--stage", "test")
    assert result.exit_code == 0, result.stderr
    assert [line.split(" ", 1)[1] for line in result.stdout.splitlines()] == [
        "test/build-42-test-0-1 | ok 1", "test/build-42-test-0-1 | ok 2"]
    request = servicer.requests[0][1]
    assert (list(request.stages), request.follow) == (["test"], False)


def test_ctrl_c_detaches_and_says_how_to_follow_again(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    servicer.executions.append([*build(5)[:2], Hang(threading.Event())])
    process = subprocess.Popen(
        [sys.executable, "-m", "devtrip_scale", "pipeline", "run", str(pipeline), "--no-logs",
         "--ca", str(server.tls.ca_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DEVSCALE_API_TOKEN": TOKEN, "DEVSCALE_SERVER": server.address})
    try:
        assert process.stdout is not None
        seen = [process.stdout.readline() for _ in range(2)]
        assert seen[1].rstrip().endswith("#2 stage lint running: #2"), seen
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "detached from build build-42; it goes on on the server" in err
    commands = printed_commands(err)
    assert commands["follow it again"] == (
        f"devscale pipeline run {pipeline} --build-id build-42 \\\n"
        f"      --server {server.address} --ca {server.tls.ca_file} --token-env "
        "DEVSCALE_API_TOKEN")
    assert commands["its logs"].startswith("devscale pipeline logs build-42 --follow \\\n")
    assert all(len(line) <= 80 or "/" in line for line in err.splitlines())
    assert TOKEN not in out + err


def test_pipeline_logs_warns_of_missed_lines(server: Loopback, servicer: Scripted) -> None:
    late = entry(4, "lint", "after the drop")
    late.missed = 2
    servicer.logs.append([entry(1, "lint", "first"), late])
    result = invoke(server, "logs", BUILD, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["missed"] for line in result.stdout.splitlines()] == [0, 2]
    assert "warning: 2 log lines were lost before #4" in result.stderr


def test_with_a_build_id_the_logs_wait_for_the_build(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    """`--build-id` names the build before ExecutePipeline has created it: the log stream
    starts with the first progress message, not before (a real server answers NOT_FOUND)."""
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    hang = Hang(threading.Event())
    servicer.executions.append([hang, *build(3)])
    servicer.logs.append([entry(1, "lint", "linting")])
    while_hung: list[str] = []

    def release() -> None:
        while_hung.extend(m for m, _, _ in servicer.requests)
        hang.released.set()

    threading.Timer(1.0, release).start()
    result = invoke(server, "run", str(pipeline), "--build-id", BUILD, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert while_hung == ["ExecutePipeline"]
    assert [m for m, _, _ in servicer.requests] == ["ExecutePipeline", "StreamBuildLogs"]
    assert "the logs stopped" not in result.stderr


def test_pipeline_run_goes_on_when_the_logs_fail(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    servicer.executions.append(build(4))
    servicer.logs.append([Abort(grpc.StatusCode.UNIMPLEMENTED, "no logs here")])
    result = invoke(server, "run", str(pipeline), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert "the logs stopped" in result.stderr and "UNIMPLEMENTED: no logs here" in result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert (last["state"], last["exitCode"]) == ("succeeded", 0)
    assert "UNIMPLEMENTED" in last["warnings"][0]


def test_mtls_authenticates_without_a_token(servicer: Scripted, tls: Tls) -> None:
    servicer.status = pb.PipelineStatus(build_id=BUILD, state=OK)
    loopback = Loopback(servicer, tls, mtls=True)
    try:
        with connect(loopback, token=None, cert_file=tls.client_cert,
                     key_file=tls.client_key) as client:
            assert client.status(BUILD).state == OK
        assert servicer.requests == [("GetPipelineStatus", pb.PipelineStatusRequest(
            build_id=BUILD), None)]
        with connect(loopback, token=TOKEN) as client, pytest.raises(
                ApiError, match="closed the connection during the TLS handshake: most likely "
                "it wants a client certificate"):
            client.status(BUILD)   # no client certificate: the handshake fails
        assert len(servicer.requests) == 1
    finally:
        loopback.close()


# ---------------------------------------------------------------- exit codes and hints (#25)


def printed_commands(said: str) -> dict[str, str]:
    """The commands Ctrl-C printed, by label (`  follow it again:`), each as printed: its lines
    (the last ones continuations after ` \\`) joined by newlines, ready to paste."""
    commands: dict[str, list[str]] = {}
    label = None
    for line in said.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            label = line.strip()[:-1]
            commands[label] = []
        elif label is not None and line.startswith("    "):
            commands[label].append(line if commands[label] else line.strip())
        else:
            label = None
    return {k: "\n".join(v) for k, v in commands.items()}


def devscale(*args: str, env: dict[str, str] | None = None, timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    """`devscale ARGS` as a new process (gRPC's own logging is decided at its import)."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("DEVSCALE_SERVER", "DEVSCALE_API_TOKEN", "GRPC_VERBOSITY")}
    return subprocess.run([sys.executable, "-m", "devtrip_scale", *args], capture_output=True,
                          text=True, timeout=timeout, env={**base, **(env or {})})


@pytest.mark.parametrize("command", [
    ["run", "PIPELINE"], ["status", BUILD], ["logs", BUILD], ["logs", BUILD, "--follow"],
    ["cancel", BUILD]], ids=["run", "status", "logs", "logs-follow", "cancel"])
def test_a_ca_that_does_not_verify_the_server_is_exit_9_in_one_line(
        server: Loopback, servicer: Scripted, tmp_path: Path, command: list[str]) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    args = [str(pipeline) if a == "PIPELINE" else a for a in command]
    result = devscale("pipeline", *args, "--server", server.address, "--ca", str(stranger),
                      env={"DEVSCALE_API_TOKEN": TOKEN})
    assert result.returncode == 9, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr          # no gRPC C-core lines (I1204 … ssl_…)
    assert f"the server's certificate at {server.address} did not verify against --ca " \
        f"{stranger} (CERTIFICATE_VERIFY_FAILED)" in lines[0]
    assert result.stdout == "" and servicer.requests == []


def test_grpc_logs_its_own_lines_with_debug_only(server: Loopback, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    result = devscale("pipeline", "status", BUILD, "--server", server.address, "--ca",
                      str(stranger), "--debug", env={"DEVSCALE_API_TOKEN": TOKEN})
    assert result.returncode == 9
    assert "ssl_transport_security" in result.stderr   # the C core's own words, on request


def test_a_refused_connection_names_the_address_at_once(tls: Tls) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = devscale("pipeline", "logs", BUILD, "--follow", "--server", f"127.0.0.1:{port}",
                      "--ca", str(tls.ca_file), env={"DEVSCALE_API_TOKEN": TOKEN}, timeout=20)
    assert result.returncode == 9, result.stderr
    assert result.stderr.splitlines() == [
        f"devscale: logs of build {BUILD}: nothing accepted a connection at 127.0.0.1:{port} "
        "(connection refused): is `devscale workers serve` running with its API there?"]


def test_the_follow_again_lines_work_when_pasted(
        server: Loopback, servicer: Scripted, tmp_path: Path) -> None:
    """Ctrl-C, then each printed command is run as printed (split as a shell would), in a
    shell that has the token in the variable the user named and no $DEVSCALE_SERVER."""
    import shlex

    pipeline = tmp_path / "ci.yaml"
    pipeline.write_text("stages: []\n", encoding="utf-8")
    servicer.executions.append([*build(5)[:2], Hang(threading.Event())])
    env = {k: v for k, v in os.environ.items() if k not in ("DEVSCALE_SERVER",
                                                             "DEVSCALE_API_TOKEN")}
    env["CI_API_TOKEN"] = TOKEN
    process = subprocess.Popen(
        [sys.executable, "-m", "devtrip_scale", "pipeline", "run", str(pipeline), "--no-logs",
         "--server", server.address, "--ca", str(server.tls.ca_file), "--token-env",
         "CI_API_TOKEN"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        seen = [process.stdout.readline() for _ in range(2)]
        assert seen[1].rstrip().endswith("#2 stage lint running: #2"), seen
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert TOKEN not in err
    hints = printed_commands(err)
    assert list(hints) == ["follow it again", "its logs", "cancel it"], err
    servicer.executions.append(build(5))
    servicer.logs.append([entry(1, "lint", "hello again")])
    servicer.status = pb.PipelineStatus(build_id=BUILD, state=pb.PIPELINE_STATE_CANCELLED)
    for name, text in hints.items():      # pasted into a shell as printed, lines and all
        assert text.startswith("devscale pipeline ")
        pasted = text.replace("devscale", f"{shlex.quote(sys.executable)} -m devtrip_scale", 1)
        result = subprocess.run(["bash", "-c", pasted], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.returncode == 0, (name, text, result.stderr)
    again = [(m, r) for m, r, _ in servicer.requests][1:]
    assert {m for m, _ in again} == {"ExecutePipeline", "StreamBuildLogs", "CancelPipeline"}
    assert all(r.build_id == BUILD for _, r in again)
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in servicer.requests)


class Plain:
    """A gRPC server without TLS on 127.0.0.1 (what a client must not mistake for the API)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)

    async def _start(self) -> int:
        self.server = grpc.aio.server()
        port: int = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_a_certificate_for_another_name_is_said(servicer: Scripted, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("api.example.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    other = Tls(tmp_path / "ca.pem", leaf.private_key_pem.bytes(),
                b"".join(blob.bytes() for blob in leaf.cert_chain_pems), Path(), Path())
    loopback = Loopback(servicer, other)
    try:
        with ApiClient(loopback.address, ca_file=other.ca_file, token=TOKEN, timeout=5
                       ) as client, pytest.raises(ApiError) as caught:
            client.status(BUILD)
    finally:
        loopback.close()
    assert str(caught.value) == (
        f"status of build {BUILD}: the server's certificate at {loopback.address} is not for "
        "the name localhost: use the name the certificate carries in --server")


def test_a_server_without_tls_is_said(tls: Tls) -> None:
    plain = Plain()
    try:
        with ApiClient(f"127.0.0.1:{plain.port}", ca_file=tls.ca_file, token=TOKEN, timeout=5
                       ) as client, pytest.raises(ApiError) as caught:
            client.status(BUILD)
    finally:
        plain.close()
    assert "does not speak TLS there (WRONG_VERSION_NUMBER)" in str(caught.value)


def test_a_server_that_wants_a_client_certificate_says_so(servicer: Scripted, tls: Tls
                                                          ) -> None:
    loopback = Loopback(servicer, tls, mtls=True)
    try:
        result = CliRunner().invoke(pipeline_app, ["status", BUILD, "--ca", str(tls.ca_file)],
                                    env={"DEVSCALE_API_TOKEN": TOKEN,
                                         "DEVSCALE_SERVER": loopback.address})
    finally:
        loopback.close()
    assert result.exit_code == 9
    assert result.stderr.splitlines() == [
        f"devscale: status of build {BUILD}: the server at {loopback.address} closed the "
        "connection during the TLS handshake: most likely it wants a client certificate "
        "(--cert and --key) signed by its client CA"]


def test_a_followed_log_broken_by_a_server_restart_is_resumed_not_ended(
        server: Loopback, servicer: Scripted) -> None:
    """A log stream that breaks is no end of the logs (exit 0 with lines missing): it is
    called again after the last line seen; only a clean end ends it."""
    hang = Hang(threading.Event())
    servicer.logs += [[entry(1, "lint", "one"), entry(2, "lint", "two"), hang],
                      [entry(3, "lint", "three")]]
    got: list[str] = []
    with connect(server) as client:
        for record in client.build_logs(BUILD, follow=True):
            got.append(record.line.text)
            if record.sequence == 2:
                server.restart()
                hang.released.set()
    assert got == ["one", "two", "three"]
    assert [(r.after_sequence, r.follow) for m, r, _ in servicer.requests
            if m == "StreamBuildLogs"] == [(0, True), (2, True)]


def test_several_servers_a_broken_stream_resumes_on_the_next_and_calls_skip_a_dead_one(
        servicer: Scripted, tls: Tls) -> None:
    """`--server a,b`: replica A breaks the stream (it is going away), B goes on from the last
    sequence; a unary call that finds A gone is answered by B."""
    other = Scripted()
    a, b = Loopback(servicer, tls), Loopback(other, tls)
    a_open = True
    try:
        messages = build(5)
        servicer.executions.append([*messages[:2], Abort(grpc.StatusCode.UNAVAILABLE,
                                                         "this replica is shutting down")])
        other.executions.append(messages[2:])
        other.status = pb.PipelineStatus(build_id=BUILD, state=OK)
        with ApiClient(f"{a.address},{b.address}", ca_file=tls.ca_file, token=TOKEN,
                       timeout=10, patience=2, backoff=0.05) as client:
            assert sequences(list(client.execute("stages: []", "ci.yaml"))) == [1, 2, 3, 4, 5]
            assert other.requests[0][1].after_sequence == 2
            assert client.server == b.address
            a.close()
            a_open = False
            client.next_server()            # back to A, which is gone now
            assert client.status(BUILD).state == OK
            assert client.server == b.address
    finally:
        if a_open:
            a.close()
        b.close()


def test_two_streams_broken_by_one_replica_each_resume_on_the_other_without_sending_the_other_back(
        servicer: Scripted, tls: Tls) -> None:
    """`pipeline run`'s progress and log streams both on A when A goes away: each moves on in
    its own place in the address list (they once shared one, so the second to break sent both
    back to the dead A)."""
    other = Scripted()
    a, b = Loopback(servicer, tls), Loopback(other, tls)
    try:
        messages = build(5)
        gone = Abort(grpc.StatusCode.UNAVAILABLE, "this replica is shutting down")
        servicer.executions.append([*messages[:2], gone])
        servicer.logs.append([entry(1, "lint", "one"), gone])
        other.executions.append(messages[2:])
        other.logs.append([entry(2, "lint", "two")])
        with ApiClient(f"{a.address},{b.address}", ca_file=tls.ca_file, token=TOKEN,
                       timeout=10, patience=2, backoff=0.05) as client:
            progress_stream = client.execute("stages: []", "ci.yaml", BUILD)
            following = iter(progress_stream)
            got = [next(following).sequence, next(following).sequence]    # open on A
            logs = client.build_logs(BUILD, follow=True)
            assert [r.line.text for r in logs] == ["one", "two"]           # A, then B
            got += sequences(list(following))                               # A breaks: B
            assert got == [1, 2, 3, 4, 5]
        assert (logs.resumed, progress_stream.resumed) == (1, 1)
        assert [(m, r.after_sequence) for m, r, _ in other.requests] == [
            ("StreamBuildLogs", 1), ("ExecutePipeline", 2)]
    finally:
        a.close()
        b.close()
