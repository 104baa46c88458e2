"""The DevscaleError hierarchy and the exit code each failure maps to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `devscale`, documented in the README."""

    OK = 0
    INTERNAL = 1
    CONFIG = 2
    METRICS = 3
    KUBERNETES = 4
    PARTIAL = 5
    LOCKED = 6
    NOTIFY = 7
    PIPELINE = 8
    API = 9
    INTERRUPTED = 130


class DevscaleError(Exception):
    """Base of every error devscale reports to its user."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(DevscaleError):
    """The configuration file or the environment is invalid."""

    exit_code = ExitCode.CONFIG


class MetricsError(DevscaleError):
    """Prometheus could not be queried, or answered something unusable."""

    exit_code = ExitCode.METRICS


class KubeError(DevscaleError):
    """The Kubernetes API refused or failed a request."""

    exit_code = ExitCode.KUBERNETES

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LeaseHeld(DevscaleError):
    """Another devscale run holds the namespace's Lease: this run changes nothing."""

    exit_code = ExitCode.LOCKED

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder   # "identity, since …" when the live holder is known


class NotifyError(DevscaleError):
    """A notification channel failed; the scaling it reports on stands."""

    exit_code = ExitCode.NOTIFY

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class PipelineFailed(DevscaleError):
    """A pipeline ran and did not succeed (a stage failed, or the build was cancelled)."""

    exit_code = ExitCode.PIPELINE


class ApiError(DevscaleError):
    """The devscale gRPC API could not be reached, or refused the call (the status code and
    the server's message are in the text)."""

    exit_code = ExitCode.API


class KubeForbidden(KubeError):
    """403: the identity lacks an RBAC permission."""


class KubeNotFound(KubeError):
    """404: the object does not exist (any more)."""


class KubeConflict(KubeError):
    """409: the object changed since it was read."""
