"""The synchronous gRPC client of devscale's pipeline API: TLS, a bearer token, errors mapped to
exit codes, and progress and log streams that resume where they broke.

Every call goes over TLS (the system's trust store unless a CA file is given; mTLS with a client
certificate and key) with `authorization: Bearer <token>` metadata when a token is set. The
server may be several addresses (`--server a:50051 --server b:50051` or `a:50051,b:50051`,
see server_addresses; a DNS name with several addresses is gRPC's resolver's to spread): any
replica serves any build, so a call that finds one UNAVAILABLE goes to the next. A stream that
breaks mid-build (UNAVAILABLE, a reset connection, an early end) is called again on the next
address with the build id and the last sequence seen: at once while an address of this round is
untried, with jittered backoff after a round that all failed, and given up only once `patience`
seconds passed without progress (Patience). Each stream keeps its own place in the address list
(a progress and a log stream breaking together never send each other back to a dead replica);
sequences are checked by live.Continuity, so nothing is lost or repeated without the user being
told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import ApiError, ConfigError, DevscaleError
from devtrip_scale.workers.api import convert
from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from devtrip_scale.workers.live import Continuity, LiveState, LogRecord, Progress, StageView
from devtrip_scale.workers.progress import (
    BuildState,
)

TOKEN_ENV = "DEVSCALE_API_TOKEN"
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
PATIENCE = 60.0      # seconds a broken stream keeps trying without progress before giving up
JITTER = 0.25        # streams that broke together do not retry in lockstep
T = TypeVar("T", Progress, LogRecord)


# ---------------------------------------------------------------- proto → values


def progress_of(m: pb.PipelineProgress) -> Progress:
    return Progress(m.sequence, convert.event_of(m), m.missed)


def log_of(m: pb.LogEntry) -> LogRecord:
    return LogRecord(m.sequence, convert.line_of(m), m.missed)


def status_state(s: pb.PipelineStatus) -> LiveState:
    """A PipelineStatus as the live view's state."""
    state = LiveState(build_id=s.build_id, pipeline=s.pipeline,
                      state=convert.build_state_of(s.state), last_sequence=s.last_sequence,
                      started=convert.seconds_of(s, "started"),
                      finished=convert.seconds_of(s, "finished"))
    state.stages = {st.name: StageView.of(convert.stage_of(st)) for st in s.stages}
    return state


# ---------------------------------------------------------------- the client


# gRPC's words for a call that never reached a server (no connection, no TLS session)
_TRANSPORT = ("failed to connect", "connection refused", "socket closed", "handshake",
              "certificate_verify_failed", "wrong_version_number", "dns resolution failed",
              "not in peer certificate", "hostname verification")


def _answered(e: grpc.RpcError) -> bool:
    """Whether a failed call was ended by a server (its own status), not by the transport."""
    details = (e.details() or "").lower()
    return e.code() is grpc.StatusCode.UNAVAILABLE and bool(details) and \
        not any(words in details for words in _TRANSPORT)


class Patience:
    """When a broken stream calls again, and when it gives up: the next address at once while
    this round of addresses has one untried, the backoff's delay after a round in which every
    address failed; give up (None) once `budget` seconds passed since the last progress (or
    the start) and at least one whole round failed. A failure is cheap to count (a dead
    address refuses at once); only time without progress is the verdict. Pure: the clock is
    passed in."""

    def __init__(self, addresses: int, budget: float, backoff: Backoff, now: float) -> None:
        self.addresses = max(1, addresses)
        self.budget = budget
        self.backoff = backoff
        self.since = now            # the last progress (or the start)
        self.failures = 0           # in a row, since the last progress
        self._round = 0             # failures in this round of addresses

    def progress(self, now: float) -> None:
        """Something new arrived: the budget and the backoff start over."""
        self.since = now
        self.failures = self._round = 0
        self.backoff.reset()

    def failed(self, now: float) -> float | None:
        """A call failed (or ended early) at `now`: the delay before the next call, or None to
        give up."""
        self.failures += 1
        self._round += 1
        if self._round < self.addresses:
            return 0.0                  # another address of this round first, at once
        self._round = 0
        left = self.budget - (now - self.since)
        if left <= 0:
            return None
        return min(self.backoff.next(), left)


class Stream(Generic[T]):
    """A server stream that resumes after a break; iterate it once. `cancel()` (from any
    thread) ends the iteration quietly."""

    def __init__(self, client: ApiClient, what: str,
                 call: Callable[[_Stubs, int], Any], convert: Callable[[Any], T],
                 continuity: Continuity, *, key: str = "",
                 finished: Callable[[T | None], bool],
                 on_warning: Callable[[str], None] | None = None,
                 bad_input: bool = False, complete_on_end: bool = False) -> None:
        self._client = client
        self._bad_input = bad_input     # INVALID_ARGUMENT: the user's input (exit 2)
        # a call that ends cleanly is the end (logs: the server ends it with the build); one
        # that breaks is resumed, never taken for the end
        self._complete_on_end = complete_on_end
        self._what = what
        self._call_at = call            # (stubs, after_sequence) → the call (its messages)
        self.server = client.server     # this stream's address now (its own place in the list)
        self._convert: Callable[[Any], T] = convert
        self.continuity = continuity
        self.key = key                  # the build id once known: resuming needs it
        # did the stream end where it should, given its last item?
        self._finished: Callable[[T | None], bool] = finished
        self.warnings: list[str] = []
        self._on_warning = on_warning
        self._lock = threading.Lock()
        self._call: Any = None
        self._cancelled = False
        self.resumed = 0
        self.trailers: tuple[tuple[str, str], ...] = ()   # the last call's trailing metadata

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._call is not None:
                self._call.cancel()

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self._on_warning is not None:
            self._on_warning(text)

    def __iter__(self) -> Iterator[T]:
        client = self._client
        patience = Patience(len(client.servers), client.patience,
                            Backoff(client.backoff, client.max_backoff, jitter=JITTER),
                            time.monotonic())
        last: T | None = None
        # a call that fails before its first message is no break to resume, unless another
        # address is left to try: once every address has failed so, the failure is the answer
        received, unanswered = False, set[str]()
        while True:
            with self._lock:
                if self._cancelled:
                    return
                self._call = call = self._call_at(client.stubs(self.server),
                                                  self.continuity.last)
            cause = "it ended before the build did"
            clean = True
            try:
                for message in call:
                    item = self._convert(message)
                    keep, warning = self.continuity.accept(item.sequence, item.missed)
                    received = True
                    unanswered.clear()
                    if not keep:
                        continue
                    patience.progress(time.monotonic())
                    client.use(self.server)     # later calls start where this one works
                    if warning:
                        self._warn(warning)
                    if isinstance(item, Progress) and item.event.build_id:
                        self.key = item.event.build_id
                    last = item
                    yield item
                self.trailers = tuple(call.trailing_metadata() or ())
            except grpc.RpcError as e:
                if self._cancelled:
                    return
                if not received and _answered(e):
                    received = True   # the server itself ended the call (e.g. shutting down)
                elif not received:
                    unanswered.add(self.server)
                if e.code() not in RESUMABLE or not self.key or \
                        (not received and unanswered >= set(client.servers)):
                    raise client.error(e, self._what, bad_input=self._bad_input,
                                       server=self.server) from None
                cause = f"{e.code().name}: {client.scrub(e.details() or '')}"
                clean = False
            if self._cancelled or self._finished(last) or (clean and self._complete_on_end):
                return
            delay = patience.failed(time.monotonic())
            if delay is None:
                raise ApiError(
                    f"{self._what}: the stream from {self.server} broke {patience.failures} "
                    f"times in a row without progress for {client.patience:g}s (last: {cause}); "
                    f"build {self.key} may still be running: see `devscale pipeline status "
                    f"{self.key}`")
            self.server = client.following(self.server)
            if delay:
                time.sleep(delay)
            self.resumed += 1


def server_addresses(given: str | Sequence[str]) -> list[str]:
    """The API's addresses, in the order given, from `--server` values: each value one address
    or several separated by commas (`--server a:1 --server b:1` is `--server a:1,b:1`); blanks
    around them are dropped, and so is an address given twice (it would only be tried twice).
    None at all is a ConfigError."""
    values = [given] if isinstance(given, str) else list(given)
    addresses: list[str] = []
    for value in values:
        for address in value.split(","):
            address = address.strip()
            if address and address not in addresses:
                addresses.append(address)
    if not addresses:
        raise ConfigError("--server: give the API's host:port (or set $DEVSCALE_SERVER); "
                          "several replicas as --server host:port --server host:port "
                          "or host:port,host:port")
    return addresses


class _Stubs:
    """One address's channel and the API's stubs on it."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.pipelines = pb_grpc.OttoscalerServiceStub(  # type: ignore[no-untyped-call]
            channel)
        self.logs = pb_grpc.LogStreamingServiceStub(  # type: ignore[no-untyped-call]
            channel)


class ApiClient:
    """TLS channels to `devscale workers serve`'s gRPC API, one per address (opened when
    first used). `patience`: the seconds a broken stream keeps calling again without progress
    before it gives up (see Patience)."""

    def __init__(self, server: str | Sequence[str], *, ca_file: Path | None = None,
                 token: str | None = None, cert_file: Path | None = None,
                 key_file: Path | None = None, timeout: float = 30.0,
                 token_env: str = TOKEN_ENV, patience: float = PATIENCE,
                 backoff: float = 0.5, max_backoff: float = 5.0) -> None:
        self.servers = server_addresses(server)
        if (cert_file is None) != (key_file is None):
            raise ConfigError("--cert and --key go together (mTLS needs both)")
        self.ca_file = ca_file
        self.timeout = timeout
        self.token_env = token_env
        if patience < 0:
            raise ConfigError(f"patience {patience:g}: seconds, 0 or more")
        self.patience = patience
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._token = token or None
        self._mtls = cert_file is not None
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file, "--ca"),
            private_key=_read(key_file, "--key"),
            certificate_chain=_read(cert_file, "--cert"))
        self._stubs: dict[str, _Stubs] = {}
        self._at = 0

    @property
    def server(self) -> str:
        """The address calls go to now."""
        return self.servers[self._at]

    def stubs(self, address: str) -> _Stubs:
        """The stubs on `address`'s channel (opened on first use, then kept)."""
        stubs = self._stubs.get(address)
        if stubs is None:
            stubs = self._stubs[address] = _Stubs(grpc.secure_channel(address,
                                                                      self._credentials))
        return stubs

    @property
    def _pipelines(self) -> Any:
        return self.stubs(self.server).pipelines

    @property
    def _logs(self) -> Any:
        return self.stubs(self.server).logs

    def following(self, address: str) -> str:
        """The address after `address` in the list (the first after the last)."""
        return self.servers[(self.servers.index(address) + 1) % len(self.servers)]

    def use(self, address: str) -> None:
        """Calls go to `address` from now on (a stream found it working)."""
        self._at = self.servers.index(address)

    def next_server(self) -> None:
        """Calls go to the next address from now on (the one now was unavailable)."""
        self.use(self.following(self.server))

    def close(self) -> None:
        for stubs in self._stubs.values():
            stubs.channel.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"),) if self._token else ()

    def scrub(self, text: str) -> str:
        """`text` with the token masked (a server should never echo it; if one does, it stops
        here)."""
        return text.replace(self._token, "<token>") if self._token else text

    def error(self, e: grpc.RpcError, what: str, *, bad_input: bool = False,
              server: str | None = None) -> DevscaleError:
        """A gRPC failure as devscale's error: the status code, the server's message, advice.
        With `bad_input`, INVALID_ARGUMENT is the user's input (the server's file:line text):
        a ConfigError. `server`: the address that failed (default: the one calls go to now)."""
        where = server or self.server
        code: grpc.StatusCode = e.code()
        details = self.scrub(e.details() or "")
        if code is grpc.StatusCode.INVALID_ARGUMENT and bad_input:
            return ConfigError(details or f"{what}: the server refused the pipeline")
        text = f"{what}: {where} answered {code.name}: {details}"
        if code is grpc.StatusCode.UNAUTHENTICATED:
            if self._token:
                text += f"; the token in ${self.token_env} was refused: set it to the " \
                    "server's API token"
            elif self._mtls:
                text += "; the client certificate was not accepted"
            else:
                text += f"; no token was sent: set ${self.token_env} to the server's API token " \
                    "(or give --cert and --key for mTLS)"
        elif code is grpc.StatusCode.PERMISSION_DENIED:
            text += "; this identity may not do that"
        elif code is grpc.StatusCode.UNAVAILABLE:
            return ApiError(self._unreachable(what, details, where))
        elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
            text += f" (no answer within {self.timeout:g}s)"
        elif code is grpc.StatusCode.UNIMPLEMENTED:
            text += "; the server does not offer this method (an older devscale?)"
        return ApiError(text)

    def _unreachable(self, what: str, details: str, where: str) -> str:
        """One line on why the server could not be reached: an untrusted certificate, a name
        the certificate does not carry, a refused connection, or gRPC's own words."""
        trust = f"--ca {self.ca_file}" if self.ca_file is not None else \
            "the system's trust store (give --ca FILE, the CA that signed it)"
        if "CERTIFICATE_VERIFY_FAILED" in details:
            return (f"{what}: the server's certificate at {where} did not verify against "
                    f"{trust} (CERTIFICATE_VERIFY_FAILED)")
        if "Hostname Verification" in details or "not in peer certificate" in details:
            host = where.rpartition(":")[0] or where
            return (f"{what}: the server's certificate at {where} is not for the name "
                    f"{host}: use the name the certificate carries in --server")
        if "WRONG_VERSION_NUMBER" in details:
            return (f"{what}: the server at {where} does not speak TLS there "
                    "(WRONG_VERSION_NUMBER): is that the gRPC API's port (api.listen)?")
        if details.endswith("Socket closed"):
            return (f"{what}: the server at {where} closed the connection during the TLS "
                    "handshake: most likely it wants a client certificate (--cert and --key) "
                    "signed by its client CA")
        if "Connection refused" in details:
            return (f"{what}: nothing accepted a connection at {where} (connection "
                    "refused): is `devscale workers serve` running with its API there?")
        if "handshake failed" in details.lower():
            last = details.rpartition("last error: ")[2] or details
            return (f"{what}: the TLS handshake with {where} failed ({last}); the server "
                    "may want a client certificate (--cert and --key)")
        return (f"{what}: {where} answered UNAVAILABLE: {details}; check the address "
                f"{where} and that TLS matches: the server must serve TLS with a "
                "certificate for that name, signed by the CA in --ca (or one the system trusts)")

    def _unary(self, method: Callable[[Any], Callable[..., Any]], request: Any,
               what: str) -> Any:
        """`method(stub)` called with `request`; on UNAVAILABLE again on each other address."""
        for tried in range(len(self.servers)):
            try:
                return method(self)(request, metadata=self._metadata, timeout=self.timeout)
            except grpc.RpcError as e:
                if e.code() not in RESUMABLE or tried == len(self.servers) - 1:
                    raise self.error(e, what) from None
                self.next_server()
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- pipelines

    def execute(self, pipeline_yaml: str, file_name: str, build_id: str = "",
                on_warning: Callable[[str], None] | None = None) -> Stream[Progress]:
        """Run a pipeline (or attach to `build_id` if that build exists); its progress."""

        def call(stubs: _Stubs, after: int) -> Any:
            if after == 0:   # (again, with the build id: an existing build is attached to)
                request = pb.ExecutePipelineRequest(pipeline_yaml=pipeline_yaml,
                                                    file_name=file_name, build_id=stream.key)
            else:   # resuming: attach to the build the first call started
                request = pb.ExecutePipelineRequest(build_id=stream.key, after_sequence=after)
            return stubs.pipelines.ExecutePipeline(request, metadata=self._metadata)

        stream = self._progress(call, f"run {file_name}", build_id, on_warning, bad_input=True)
        return stream

    def attach(self, build_id: str, after_sequence: int = 0,
               on_warning: Callable[[str], None] | None = None) -> Stream[Progress]:
        """The progress of a build already running (or ended), after `after_sequence`."""

        def call(stubs: _Stubs, after: int) -> Any:
            request = pb.ExecutePipelineRequest(build_id=build_id, after_sequence=after)
            return stubs.pipelines.ExecutePipeline(request, metadata=self._metadata)

        return self._progress(call, f"follow build {build_id}", build_id, on_warning,
                              after_sequence)

    def _progress(self, call: Callable[[_Stubs, int], Any], what: str, build_id: str,
                  on_warning: Callable[[str], None] | None, after: int = 0, *,
                  bad_input: bool = False) -> Stream[Progress]:
        def finished(last: Progress | None) -> bool:
            return last is not None and last.event.build_state is not BuildState.RUNNING

        return Stream(self, what, call, progress_of,
                      Continuity("progress messages", after), key=build_id,
                      finished=finished, on_warning=on_warning, bad_input=bad_input)

    def status(self, build_id: str) -> pb.PipelineStatus:
        result: pb.PipelineStatus = self._unary(
            lambda c: c._pipelines.GetPipelineStatus, pb.PipelineStatusRequest(build_id=build_id),
            f"status of build {build_id}")
        return result

    def cancel(self, build_id: str) -> pb.PipelineStatus:
        result: pb.PipelineStatus = self._unary(
            lambda c: c._pipelines.CancelPipeline, pb.CancelPipelineRequest(build_id=build_id),
            f"cancel build {build_id}")
        return result

    # -------------------------------------------------------------- logs

    def build_logs(self, build_id: str, *, follow: bool = False, stages: tuple[str, ...] = (),
                   after_sequence: int = 0,
                   on_warning: Callable[[str], None] | None = None) -> Stream[LogRecord]:
        """A build's log lines (merged by time across its pods); with `follow`, live until the
        build ends. A broken stream resumes only when following (otherwise it ends)."""

        def call(stubs: _Stubs, after: int) -> Any:
            request = pb.BuildLogsRequest(build_id=build_id, follow=follow,
                                          after_sequence=after, stages=list(stages))
            return stubs.logs.StreamBuildLogs(request, metadata=self._metadata)

        # a stage filter leaves gaps in the build's numbering: only `missed` can tell a loss
        return Stream(self, f"logs of build {build_id}", call, log_of,
                      Continuity("log lines", after_sequence, check_gaps=not stages),
                      key=build_id if follow else "", finished=lambda _: False,
                      on_warning=on_warning, complete_on_end=True)


def _read(path: Path | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot read it: {e.strerror or e}") from None
