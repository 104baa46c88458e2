"""workers.yaml: the typed config of `devscale workers serve`; errors name file, line, field.

Read with devtrip_scale.core.yamlfile's loader (UTF-8, duplicate keys, line index), not a copy.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.core.redact import redact_url
from devtrip_scale.core.yamlfile import (
    Model,
    check_namespace,
    read_document,
    validation_error,
)
from devtrip_scale.notify.settings import NotifyModel

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes' quantity grammar: a signed decimal and at most one suffix, binary SI, decimal SI
# or an exponent (kube-apiserver refuses `1e3m` and `1mi`, which parse_quantity would take).
_QUANTITY = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelUrl:
    """`redis+sentinel://[:password@]host:port[,host:port…]/service_name[/db]`: Redis Sentinel
    (redis-py's Sentinel client) finds the current master of `service`."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None


def sentinel_parts(url: str) -> SentinelUrl:
    """A redis+sentinel URL's parts; ValueError naming what is wrong."""
    rest = url[len(SENTINEL_SCHEME) + 3:] if url.startswith(f"{SENTINEL_SCHEME}://") else ""
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{SENTINEL_SCHEME}: {host!r} is not host:port (the sentinels, "
                             "comma-separated)")
        sentinels.append((name.strip("[]"), int(port)))
    service, _, db = path.partition("/")
    if not service:
        raise ValueError(f"{SENTINEL_SCHEME}://host:port[,host:port]/service_name[/db]: the "
                         "service name (the master's name in Sentinel) is missing")
    if db and not db.isdigit():
        raise ValueError(f"{SENTINEL_SCHEME}: the database {db!r} is not a number")
    password = unquote(auth.partition(":")[2]) if auth else None
    return SentinelUrl(tuple(sentinels), service, int(db or 0), password or None)


class RedisModel(Model):
    url: str = "redis://localhost:6379/0"
    password_env: str | None = None
    stream: str = Field(default="devscale:requests", min_length=1)
    group: str = Field(default="devscale-workers", min_length=1)
    consumer: str | None = Field(default=None, description="default: the host name")
    dead_letter_stream: str = "devscale:requests:dead"
    results_stream: str = "devscale:results"
    results_maxlen: int = Field(default=100_000, ge=100)
    block_seconds: float = Field(default=5, gt=0, le=60)
    socket_timeout_seconds: float = Field(default=30, gt=0, le=600)
    claim_idle_seconds: float = Field(default=60, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    batch: int = Field(default=16, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        scheme = url.partition("://")[0]
        if scheme == SENTINEL_SCHEME:
            sentinel_parts(url)          # raises ValueError with what is wrong
            return url
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a redis://, rediss://, unix:// or {SENTINEL_SCHEME}:// URL")
        return url

    @model_validator(mode="after")
    def _timeouts(self) -> RedisModel:
        # a blocking read longer than the socket timeout fails as a timeout (redis-py #2807)
        if self.socket_timeout_seconds < self.block_seconds + 5:
            raise ValueError(f"socket_timeout_seconds ({self.socket_timeout_seconds:g}) must be "
                             f"at least block_seconds + 5 ({self.block_seconds + 5:g})")
        return self

    def safe_url(self) -> str:
        """The URL with any password masked, for messages (core.redact; a Sentinel URL's list
        of hosts is not one host, so its credentials are masked here the same way)."""
        if self.url.startswith(f"{SENTINEL_SCHEME}://"):
            rest = self.url[len(SENTINEL_SCHEME) + 3:]
            auth, at, hosts = rest.rpartition("@")
            return f"{SENTINEL_SCHEME}://" + (f"{auth.partition(':')[0]}:***@" if at else "") \
                + hosts
        return redact_url(self.url)


def quantity_value(text: str) -> Decimal:
    """A Kubernetes quantity's value (`500m` → 0.5, `2Pi` → 2**51), for comparing."""
    from kubernetes.utils import parse_quantity  # lazily: kubernetes is slow to import

    return Decimal(parse_quantity(text))


def _quantity_text(value: object) -> str:
    """YAML reads `cpu: 2` as a number: a quantity is kept as the text Kubernetes is sent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{value!r} is not a quantity such as 500m or 256Mi")


def _quantity(text: str) -> str:
    if not _QUANTITY.match(text):
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2, 0.5, 256Mi or 1e9 "
                         "(one suffix: n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent)")
    if quantity_value(text) < 0:
        raise ValueError(f"{text} is negative")
    return text


Quantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(_quantity)]


class ResourcesModel(Model):
    """A pod's requests and limits (both with cpu and memory), checked as Kubernetes does:
    quantities by its grammar, none negative, no request above its limit. Shared by
    workers.yaml's `worker` and every pipeline stage."""

    requests: dict[str, Quantity]
    limits: dict[str, Quantity]

    @model_validator(mode="after")
    def _both(self) -> ResourcesModel:
        for kind in ("requests", "limits"):
            got: dict[str, str] = getattr(self, kind)
            missing = [r for r in ("cpu", "memory") if r not in got]
            if missing:
                raise ValueError(f"{kind} must give {' and '.join(missing)}")
        above = [f"requests.{name} ({request}) is above limits.{name} ({self.limits[name]})"
                 for name, request in self.requests.items()
                 if name in self.limits
                 and quantity_value(request) > quantity_value(self.limits[name])]
        if above:
            raise ValueError("; ".join(above) + ": a request may not exceed its limit (the API "
                             "server would refuse every pod)")
        return self


class WorkerModel(Model):
    """The worker pod template."""

    image: str = Field(min_length=1)
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    resources: ResourcesModel
    active_deadline_seconds: int = Field(default=3600, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    service_account: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return env


class RetryModel(Model):
    max_retries: int = Field(default=2, ge=0, le=20)
    max_disruptions: int = Field(default=5, ge=0, le=50, description="evictions and lost "
                                 "nodes retried without using a retry")


class LimitsModel(Model):
    max_workers: int = Field(default=100, ge=1)
    max_pod_count: int | None = Field(default=None, ge=1, description="per request; default "
                                      "max_workers")
    api_writes_per_second: float = Field(default=20, gt=0)
    api_write_burst: int = Field(default=40, ge=1)

    @property
    def pod_count_limit(self) -> int:
        return min(self.max_pod_count or self.max_workers, self.max_workers)


class TlsModel(Model):
    """The gRPC API's certificate; with `client_ca_file`, clients may (or must) show theirs."""

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_ca_file: str | None = None

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        base = (info.context or {}).get("base")
        path = Path(value).expanduser()
        if not path.is_absolute() and isinstance(base, Path):
            path = base / path
        if not path.is_file():
            raise ValueError(f"{value}: no such file")
        return str(path)


def host_port(value: str, example: str, zero: bool = True) -> str:
    """`value` if it is host:port (port 0, "any free one", only with `zero`)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 if zero else 1) <= int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (e.g. {example})")
    return value


class ApiModel(Model):
    """The gRPC API (`devscale.v1`) of `devscale workers serve`: TLS always, and a bearer
    token, a client certificate (`auth: mtls`) or both on every method but health."""

    enabled: bool = False
    listen: str = "0.0.0.0:50051"
    tls: TlsModel | None = None
    auth: Literal["token", "mtls", "both"] = "token"
    token_env: str = Field(default="DEVSCALE_API_TOKEN", description="the environment "
                           "variable holding the token (several: comma separated)")

    plaintext_listen: str | None = Field(default=None, description="ottoscaler.v1 only, "
                                         "without TLS, for Ottoscaler's CI server: loopback "
                                         "unless plaintext_allow_remote")
    plaintext_allow_remote: bool = Field(default=False, description="let plaintext_listen be "
                                         "a non-loopback address (then deploy the "
                                         "NetworkPolicy `devscale manifests workers` prints)")
    plaintext_clients: dict[str, str] = Field(
        default_factory=lambda: {"app": "otto-handler"}, min_length=1, description="labels of "
        "the CI server's pods: the only pods the NetworkPolicy admits to the plaintext port")
    plaintext_clients_namespace: str | None = Field(default=None, description="the CI "
                                                    "server's namespace (default: devscale's)")

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{listen!r} is not host:port (e.g. 0.0.0.0:50051)")
        return listen

    @field_validator("plaintext_listen")
    @classmethod
    def _plaintext_listen(cls, listen: str | None) -> str | None:
        return None if listen is None else host_port(listen, "127.0.0.1:50052")

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, name: str) -> str:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        return name

    @model_validator(mode="after")
    def _secure(self) -> ApiModel:
        if self.enabled and self.tls is None:
            raise ValueError("the API needs tls: {cert_file, key_file}; it never serves "
                             "plaintext")
        if self.plaintext_listen is not None:
            problem = plaintext_problem(self.plaintext_listen, self.plaintext_allow_remote)
            if problem:
                raise ValueError(problem)
            if self.plaintext_allow_remote and not self.needs_token:
                raise ValueError("plaintext_allow_remote needs auth: token or both: without "
                                 "TLS a client certificate cannot be checked, so a remote "
                                 "plaintext client would need no credentials at all")
        if self.auth != "token" and (self.tls is None or self.tls.client_ca_file is None):
            raise ValueError(f"auth: {self.auth} needs tls.client_ca_file (the CA that signs "
                             "client certificates)")
        return self

    @property
    def needs_token(self) -> bool:
        return self.auth in ("token", "both")

    @property
    def needs_client_cert(self) -> bool:
        return self.auth in ("mtls", "both")

    def tokens(self, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The accepted bearer tokens, from `token_env` (never shown in any message)."""
        env = os.environ if env is None else env
        if not self.needs_token:
            return ()
        raw = env.get(self.token_env)
        if raw is None:
            raise ConfigError(f"api.token_env names ${self.token_env}, which is not set (the "
                              "API's bearer token)")
        tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
        if not tokens:
            raise ConfigError(f"${self.token_env} is empty: give the API's bearer token")
        return tokens


def is_loopback(host: str) -> bool:
    """Whether `host` (of host:port) only ever means this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_problem(listen: str, allow_remote: bool) -> str | None:
    """Why a plaintext listener on `listen` is refused, or None."""
    host = listen.rpartition(":")[0]
    if allow_remote or is_loopback(host):
        return None
    return (f"plaintext_listen {listen}: {host} is not a loopback address; a plaintext "
            "listener (no TLS) on the network needs plaintext_allow_remote: true, and then the "
            "NetworkPolicy that `devscale manifests workers` prints")


class OttoHandlerModel(Model):
    """Ottoscaler's CI server (Otto-handler) as a receiver of worker logs and worker states
    (ottoscaler.v1 OttoHandlerLogService): devscale pushes them, as Ottoscaler did."""

    address: str = Field(min_length=3, description="host:port of its gRPC server")
    plaintext: bool = Field(default=False, description="dial without TLS (Ottoscaler's own "
                            "clients do)")
    ca_file: str | None = Field(default=None, description="the CA of its certificate "
                                "(default: the system's)")
    token_env: str | None = Field(default=None, description="the environment variable holding "
                                  "a bearer token to send")
    queue_limit: int = Field(default=100_000, ge=10, le=10_000_000, description="log lines "
                             "held for it; past that, lines are counted as overflow and said")
    report_wait_seconds: float = Field(default=10, ge=0, le=600, description="how long a "
                                       "build's result waits for its lines to be settled")
    max_backoff_seconds: float = Field(default=10, gt=0, le=300)
    call_timeout_seconds: float = Field(default=10, gt=0, le=300)

    @field_validator("address")
    @classmethod
    def _address(cls, address: str) -> str:
        return host_port(address, "otto-handler:50051", zero=False)

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        return name

    @model_validator(mode="after")
    def _either(self) -> OttoHandlerModel:
        if self.plaintext and self.ca_file:
            raise ValueError("plaintext and ca_file contradict each other")
        return self

    def token(self, env: Mapping[str, str] | None = None) -> str | None:
        """The bearer token (never shown in any message)."""
        env = os.environ if env is None else env
        if self.token_env is None:
            return None
        value = env.get(self.token_env, "").strip()
        if not value:
            raise ConfigError(f"otto_handler.token_env names ${self.token_env}, which is not "
                              "set or empty")
        return value


class PipelinesModel(Model):
    """Builds live in Redis. Finished ones are kept there for `pipeline status`, attach and
    logs: at most `keep_builds` of them, each at most `keep_seconds` after it ended. A replica
    drives a build while it holds its lease (`lease_seconds`, renewed every fifth of it);
    every `adopt_seconds` each replica looks for running builds nobody holds. A build keeps at
    most `log_lines_per_pod` lines of each pod's log (the rest counted and said)."""

    keep_builds: int = Field(default=100, ge=1, le=100_000)
    keep_seconds: float = Field(default=3600, ge=0)
    lease_seconds: float = Field(default=10, ge=1, le=600)
    adopt_seconds: float = Field(default=1.0, gt=0, le=60)
    log_lines_per_pod: int = Field(default=10_000, ge=1)


class WorkersSettings(Model):
    namespace: str = "default"
    redis: RedisModel = RedisModel()
    worker: WorkerModel
    limits: LimitsModel = LimitsModel()
    retry: RetryModel = RetryModel()
    pipelines: PipelinesModel = PipelinesModel()
    logs_dir: str = "/var/lib/devscale/worker-logs"
    cancel_grace_seconds: int = Field(default=30, ge=0)
    shutdown_grace_seconds: float = Field(default=25, ge=0)
    notify: NotifyModel = NotifyModel()
    api: ApiModel = ApiModel()
    otto_handler: OttoHandlerModel | None = None

    _namespace = field_validator("namespace")(check_namespace)

    def redis_password(self, env: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if env is None else env
        name = self.redis.password_env
        if name is None:
            return None
        if name not in env:
            raise ConfigError(f"redis.password_env names ${name}, which is not set")
        return env[name]


def load_workers_config(path: Path, env: Mapping[str, str] | None = None) -> WorkersSettings:
    """Read and validate workers.yaml ($NAMESPACE overrides `namespace`, as for `check`)."""
    env = os.environ if env is None else env
    data, node = read_document(path)
    origins: dict[tuple[str | int, ...], str] = {}
    if env.get("NAMESPACE"):
        data = {**data, "namespace": env["NAMESPACE"]}
        origins[("namespace",)] = "$NAMESPACE"
    try:
        return WorkersSettings.model_validate(data, context={"base": path.parent})
    except ValidationError as e:
        raise validation_error(path, e, node, origins) from None


def example(namespace: str = "devtrip") -> dict[str, Any]:
    """The smallest useful config (what config/workers.yaml spells out with comments)."""
    return {"namespace": namespace, "redis": {"url": "redis://redis:6379/0"},
            "worker": {"image": "busybox:1.36", "command": ["sh", "-c", "echo work; sleep 5"],
                       "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                     "limits": {"cpu": "500m", "memory": "128Mi"}}}}
