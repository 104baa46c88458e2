from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_PENDING: _ClassVar[StageStatus]
    STAGE_RUNNING: _ClassVar[StageStatus]
    STAGE_COMPLETED: _ClassVar[StageStatus]
    STAGE_FAILED: _ClassVar[StageStatus]
    STAGE_CANCELLED: _ClassVar[StageStatus]
    STAGE_SKIPPED: _ClassVar[StageStatus]
    STAGE_RETRYING: _ClassVar[StageStatus]
STAGE_PENDING: StageStatus
STAGE_RUNNING: StageStatus
STAGE_COMPLETED: StageStatus
STAGE_FAILED: StageStatus
STAGE_CANCELLED: StageStatus
STAGE_SKIPPED: StageStatus
STAGE_RETRYING: StageStatus

class ScaleRequest(_message.Message):
    __slots__ = ("task_id", "repository", "commit_sha", "worker_count", "build_config", "triggered_by", "reason", "metadata")
    class BuildConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    WORKER_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUILD_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    repository: str
    commit_sha: str
    worker_count: int
    build_config: _containers.ScalarMap[str, str]
    triggered_by: str
    reason: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., repository: _Optional[str] = ..., commit_sha: _Optional[str] = ..., worker_count: _Optional[int] = ..., build_config: _Optional[_Mapping[str, str]] = ..., triggered_by: _Optional[str] = ..., reason: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScaleResponse(_message.Message):
    __slots__ = ("status", "message", "processed_count", "worker_pod_names", "started_at", "completed_at")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SUCCESS: _ClassVar[ScaleResponse.Status]
        FAILED: _ClassVar[ScaleResponse.Status]
        PARTIAL_SUCCESS: _ClassVar[ScaleResponse.Status]
        ALREADY_PROCESSED: _ClassVar[ScaleResponse.Status]
    SUCCESS: ScaleResponse.Status
    FAILED: ScaleResponse.Status
    PARTIAL_SUCCESS: ScaleResponse.Status
    ALREADY_PROCESSED: ScaleResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKER_POD_NAMES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    status: ScaleResponse.Status
    message: str
    processed_count: int
    worker_pod_names: _containers.RepeatedScalarFieldContainer[str]
    started_at: str
    completed_at: str
    def __init__(self, status: _Optional[_Union[ScaleResponse.Status, str]] = ..., message: _Optional[str] = ..., processed_count: _Optional[int] = ..., worker_pod_names: _Optional[_Iterable[str]] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ...) -> None: ...

class WorkerStatusRequest(_message.Message):
    __slots__ = ("task_id", "worker_pod_name", "status_filter")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_POD_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FILTER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_pod_name: str
    status_filter: str
    def __init__(self, task_id: _Optional[str] = ..., worker_pod_name: _Optional[str] = ..., status_filter: _Optional[str] = ...) -> None: ...

class WorkerStatusResponse(_message.Message):
    __slots__ = ("total_count", "running_count", "pending_count", "succeeded_count", "failed_count", "workers")
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    total_count: int
    running_count: int
    pending_count: int
    succeeded_count: int
    failed_count: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerPodStatus]
    def __init__(self, total_count: _Optional[int] = ..., running_count: _Optional[int] = ..., pending_count: _Optional[int] = ..., succeeded_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerPodStatus, _Mapping]]] = ...) -> None: ...

class WorkerPodStatus(_message.Message):
    __slots__ = ("pod_name", "task_id", "status", "created_at", "started_at", "completed_at", "node_name", "pod_ip", "labels", "error_message")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_IP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    pod_name: str
    task_id: str
    status: str
    created_at: str
    started_at: str
    completed_at: str
    node_name: str
    pod_ip: str
    labels: _containers.ScalarMap[str, str]
    error_message: str
    def __init__(self, pod_name: _Optional[str] = ..., task_id: _Optional[str] = ..., status: _Optional[str] = ..., created_at: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., node_name: _Optional[str] = ..., pod_ip: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., error_message: _Optional[str] = ...) -> None: ...

class WorkerMetadata(_message.Message):
    __slots__ = ("pod_name", "namespace", "node_name", "created_at", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    pod_name: str
    namespace: str
    node_name: str
    created_at: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, pod_name: _Optional[str] = ..., namespace: _Optional[str] = ..., node_name: _Optional[str] = ..., created_at: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkerLogEntry(_message.Message):
    __slots__ = ("worker_id", "task_id", "timestamp", "level", "source", "message", "pod_metadata", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    POD_METADATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    timestamp: str
    level: str
    source: str
    message: str
    pod_metadata: WorkerMetadata
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., timestamp: _Optional[str] = ..., level: _Optional[str] = ..., source: _Optional[str] = ..., message: _Optional[str] = ..., pod_metadata: _Optional[_Union[WorkerMetadata, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LogForwardResponse(_message.Message):
    __slots__ = ("status", "message", "sequence", "throttle_ms")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACK: _ClassVar[LogForwardResponse.Status]
        RETRY: _ClassVar[LogForwardResponse.Status]
        DROP: _ClassVar[LogForwardResponse.Status]
    ACK: LogForwardResponse.Status
    RETRY: LogForwardResponse.Status
    DROP: LogForwardResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_MS_FIELD_NUMBER: _ClassVar[int]
    status: LogForwardResponse.Status
    message: str
    sequence: int
    throttle_ms: int
    def __init__(self, status: _Optional[_Union[LogForwardResponse.Status, str]] = ..., message: _Optional[str] = ..., sequence: _Optional[int] = ..., throttle_ms: _Optional[int] = ...) -> None: ...

class WorkerStatusNotification(_message.Message):
    __slots__ = ("worker_id", "task_id", "status", "timestamp", "reason", "metadata")
    class StatusType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATED: _ClassVar[WorkerStatusNotification.StatusType]
        RUNNING: _ClassVar[WorkerStatusNotification.StatusType]
        COMPLETED: _ClassVar[WorkerStatusNotification.StatusType]
        FAILED: _ClassVar[WorkerStatusNotification.StatusType]
        TERMINATED: _ClassVar[WorkerStatusNotification.StatusType]
    CREATED: WorkerStatusNotification.StatusType
    RUNNING: WorkerStatusNotification.StatusType
    COMPLETED: WorkerStatusNotification.StatusType
    FAILED: WorkerStatusNotification.StatusType
    TERMINATED: WorkerStatusNotification.StatusType
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    status: WorkerStatusNotification.StatusType
    timestamp: str
    reason: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., status: _Optional[_Union[WorkerStatusNotification.StatusType, str]] = ..., timestamp: _Optional[str] = ..., reason: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkerStatusAck(_message.Message):
    __slots__ = ("status", "message")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RECEIVED: _ClassVar[WorkerStatusAck.Status]
        IGNORED: _ClassVar[WorkerStatusAck.Status]
        ERROR: _ClassVar[WorkerStatusAck.Status]
    RECEIVED: WorkerStatusAck.Status
    IGNORED: WorkerStatusAck.Status
    ERROR: WorkerStatusAck.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: WorkerStatusAck.Status
    message: str
    def __init__(self, status: _Optional[_Union[WorkerStatusAck.Status, str]] = ..., message: _Optional[str] = ...) -> None: ...

class PipelineRequest(_message.Message):
    __slots__ = ("pipeline_id", "name", "stages", "repository", "commit_sha", "triggered_by", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_BY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    name: str
    stages: _containers.RepeatedCompositeFieldContainer[PipelineStage]
    repository: str
    commit_sha: str
    triggered_by: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, pipeline_id: _Optional[str] = ..., name: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[PipelineStage, _Mapping]]] = ..., repository: _Optional[str] = ..., commit_sha: _Optional[str] = ..., triggered_by: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PipelineStage(_message.Message):
    __slots__ = ("stage_id", "type", "name", "worker_count", "depends_on", "config", "image", "command", "args", "timeout_seconds", "retry_policy")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    stage_id: str
    type: str
    name: str
    worker_count: int
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    config: _containers.ScalarMap[str, str]
    image: str
    command: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: int
    retry_policy: RetryPolicy
    def __init__(self, stage_id: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., worker_count: _Optional[int] = ..., depends_on: _Optional[_Iterable[str]] = ..., config: _Optional[_Mapping[str, str]] = ..., image: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[int] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "retry_delay_seconds", "retryable_failures")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    retry_delay_seconds: int
    retryable_failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_attempts: _Optional[int] = ..., retry_delay_seconds: _Optional[int] = ..., retryable_failures: _Optional[_Iterable[str]] = ...) -> None: ...

class PipelineProgress(_message.Message):
    __slots__ = ("pipeline_id", "stage_id", "status", "message", "worker_pod_names", "progress_percentage", "timestamp", "started_at", "completed_at", "error_message", "metrics")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_POD_NAMES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    stage_id: str
    status: StageStatus
    message: str
    worker_pod_names: _containers.RepeatedScalarFieldContainer[str]
    progress_percentage: int
    timestamp: str
    started_at: str
    completed_at: str
    error_message: str
    metrics: StageMetrics
    def __init__(self, pipeline_id: _Optional[str] = ..., stage_id: _Optional[str] = ..., status: _Optional[_Union[StageStatus, str]] = ..., message: _Optional[str] = ..., worker_pod_names: _Optional[_Iterable[str]] = ..., progress_percentage: _Optional[int] = ..., timestamp: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., error_message: _Optional[str] = ..., metrics: _Optional[_Union[StageMetrics, _Mapping]] = ...) -> None: ...

class StageMetrics(_message.Message):
    __slots__ = ("duration_seconds", "successful_workers", "failed_workers", "total_workers", "avg_cpu_usage", "avg_memory_mb")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSFUL_WORKERS_FIELD_NUMBER: _ClassVar[int]
    FAILED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WORKERS_FIELD_NUMBER: _ClassVar[int]
    AVG_CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    AVG_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: int
    successful_workers: int
    failed_workers: int
    total_workers: int
    avg_cpu_usage: float
    avg_memory_mb: float
    def __init__(self, duration_seconds: _Optional[int] = ..., successful_workers: _Optional[int] = ..., failed_workers: _Optional[int] = ..., total_workers: _Optional[int] = ..., avg_cpu_usage: _Optional[float] = ..., avg_memory_mb: _Optional[float] = ...) -> None: ...
