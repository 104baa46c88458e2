import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_STATE_UNSPECIFIED: _ClassVar[StageState]
    STAGE_STATE_WAITING: _ClassVar[StageState]
    STAGE_STATE_RUNNING: _ClassVar[StageState]
    STAGE_STATE_RETRYING: _ClassVar[StageState]
    STAGE_STATE_SUCCEEDED: _ClassVar[StageState]
    STAGE_STATE_FAILED: _ClassVar[StageState]
    STAGE_STATE_SKIPPED: _ClassVar[StageState]
    STAGE_STATE_CANCELLED: _ClassVar[StageState]

class PipelineState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STATE_UNSPECIFIED: _ClassVar[PipelineState]
    PIPELINE_STATE_RUNNING: _ClassVar[PipelineState]
    PIPELINE_STATE_SUCCEEDED: _ClassVar[PipelineState]
    PIPELINE_STATE_FAILED: _ClassVar[PipelineState]
    PIPELINE_STATE_CANCELLED: _ClassVar[PipelineState]
STAGE_STATE_UNSPECIFIED: StageState
STAGE_STATE_WAITING: StageState
STAGE_STATE_RUNNING: StageState
STAGE_STATE_RETRYING: StageState
STAGE_STATE_SUCCEEDED: StageState
STAGE_STATE_FAILED: StageState
STAGE_STATE_SKIPPED: StageState
STAGE_STATE_CANCELLED: StageState
PIPELINE_STATE_UNSPECIFIED: PipelineState
PIPELINE_STATE_RUNNING: PipelineState
PIPELINE_STATE_SUCCEEDED: PipelineState
PIPELINE_STATE_FAILED: PipelineState
PIPELINE_STATE_CANCELLED: PipelineState

class ScaleUpRequest(_message.Message):
    __slots__ = ("task_id", "pod_count", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    POD_COUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    pod_count: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., pod_count: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScaleUpResponse(_message.Message):
    __slots__ = ("task_id", "pods", "created")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PODS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    pods: _containers.RepeatedScalarFieldContainer[str]
    created: int
    def __init__(self, task_id: _Optional[str] = ..., pods: _Optional[_Iterable[str]] = ..., created: _Optional[int] = ...) -> None: ...

class ScaleDownRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class ScaleDownResponse(_message.Message):
    __slots__ = ("task_id", "pending_deleted", "running_deleted")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_DELETED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_DELETED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    pending_deleted: int
    running_deleted: int
    def __init__(self, task_id: _Optional[str] = ..., pending_deleted: _Optional[int] = ..., running_deleted: _Optional[int] = ...) -> None: ...

class WorkerStatusRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("pod", "index", "attempt", "phase", "has_exit_code", "exit_code", "node", "build_id", "stage")
    POD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    pod: str
    index: int
    attempt: int
    phase: str
    has_exit_code: bool
    exit_code: int
    node: str
    build_id: str
    stage: str
    def __init__(self, pod: _Optional[str] = ..., index: _Optional[int] = ..., attempt: _Optional[int] = ..., phase: _Optional[str] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., node: _Optional[str] = ..., build_id: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("task_id", "workers", "phases")
    class PhasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    phases: _containers.ScalarMap[str, int]
    def __init__(self, task_id: _Optional[str] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., phases: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WorkerStatusResponse(_message.Message):
    __slots__ = ("tasks", "max_workers", "live_workers", "queued_workers")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    LIVE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStatus]
    max_workers: int
    live_workers: int
    queued_workers: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskStatus, _Mapping]]] = ..., max_workers: _Optional[int] = ..., live_workers: _Optional[int] = ..., queued_workers: _Optional[int] = ...) -> None: ...

class ExecutePipelineRequest(_message.Message):
    __slots__ = ("pipeline_yaml", "file_name", "build_id", "after_sequence")
    PIPELINE_YAML_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    pipeline_yaml: str
    file_name: str
    build_id: str
    after_sequence: int
    def __init__(self, pipeline_yaml: _Optional[str] = ..., file_name: _Optional[str] = ..., build_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class StageStatus(_message.Message):
    __slots__ = ("name", "state", "attempt", "needs", "started", "finished", "workers", "workers_succeeded", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: StageState
    attempt: int
    needs: _containers.RepeatedScalarFieldContainer[str]
    started: _timestamp_pb2.Timestamp
    finished: _timestamp_pb2.Timestamp
    workers: int
    workers_succeeded: int
    message: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[StageState, str]] = ..., attempt: _Optional[int] = ..., needs: _Optional[_Iterable[str]] = ..., started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workers: _Optional[int] = ..., workers_succeeded: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PipelineProgress(_message.Message):
    __slots__ = ("sequence", "build_id", "time", "pipeline_state", "stage", "stage_state", "attempt", "worker_index", "pod", "message", "missed", "stages")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_INDEX_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    build_id: str
    time: _timestamp_pb2.Timestamp
    pipeline_state: PipelineState
    stage: str
    stage_state: StageState
    attempt: int
    worker_index: int
    pod: str
    message: str
    missed: int
    stages: _containers.RepeatedCompositeFieldContainer[StageStatus]
    def __init__(self, sequence: _Optional[int] = ..., build_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pipeline_state: _Optional[_Union[PipelineState, str]] = ..., stage: _Optional[str] = ..., stage_state: _Optional[_Union[StageState, str]] = ..., attempt: _Optional[int] = ..., worker_index: _Optional[int] = ..., pod: _Optional[str] = ..., message: _Optional[str] = ..., missed: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[StageStatus, _Mapping]]] = ...) -> None: ...

class PipelineStatusRequest(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: str
    def __init__(self, build_id: _Optional[str] = ...) -> None: ...

class CancelPipelineRequest(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: str
    def __init__(self, build_id: _Optional[str] = ...) -> None: ...

class PipelineStatus(_message.Message):
    __slots__ = ("build_id", "pipeline", "state", "stages", "started", "finished", "last_sequence")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    build_id: str
    pipeline: str
    state: PipelineState
    stages: _containers.RepeatedCompositeFieldContainer[StageStatus]
    started: _timestamp_pb2.Timestamp
    finished: _timestamp_pb2.Timestamp
    last_sequence: int
    def __init__(self, build_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., state: _Optional[_Union[PipelineState, str]] = ..., stages: _Optional[_Iterable[_Union[StageStatus, _Mapping]]] = ..., started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class WorkerLogsRequest(_message.Message):
    __slots__ = ("task_id", "pod", "follow")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    pod: str
    follow: bool
    def __init__(self, task_id: _Optional[str] = ..., pod: _Optional[str] = ..., follow: _Optional[bool] = ...) -> None: ...

class BuildLogsRequest(_message.Message):
    __slots__ = ("build_id", "follow", "after_sequence", "stages")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    build_id: str
    follow: bool
    after_sequence: int
    stages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, build_id: _Optional[str] = ..., follow: _Optional[bool] = ..., after_sequence: _Optional[int] = ..., stages: _Optional[_Iterable[str]] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("sequence", "time", "build_id", "stage", "task_id", "worker", "index", "attempt", "container", "stream", "message", "missed")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    build_id: str
    stage: str
    task_id: str
    worker: str
    index: int
    attempt: int
    container: str
    stream: str
    message: str
    missed: int
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., build_id: _Optional[str] = ..., stage: _Optional[str] = ..., task_id: _Optional[str] = ..., worker: _Optional[str] = ..., index: _Optional[int] = ..., attempt: _Optional[int] = ..., container: _Optional[str] = ..., stream: _Optional[str] = ..., message: _Optional[str] = ..., missed: _Optional[int] = ...) -> None: ...
