"""ottoscaler.v1 as devscale generates it is Ottoscaler's published interface on the wire: every
method's full path and streaming shape, every message's fields (name, number, type, label, map
or message type) and every enum's values match the table below, written from the public
repository Team-5-CodeCat/ottoscaler (proto/log_streaming.proto). A field with the right name
and another number decodes into nonsense without an error, so the numbers are what is pinned."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto

S, I32, I64, F, ENUM, MSG, BOOL = "string", "int32", "int64", "float", "enum", "message", "bool"
ONE, MANY, MAP = "optional", "repeated", "map"

# method path → (request, response, client streams, server streams)
METHODS = {
    "/ottoscaler.v1.OttoscalerService/ScaleUp":
        ("ScaleRequest", "ScaleResponse", False, False),
    "/ottoscaler.v1.OttoscalerService/ScaleDown":
        ("ScaleRequest", "ScaleResponse", False, False),
    "/ottoscaler.v1.OttoscalerService/GetWorkerStatus":
        ("WorkerStatusRequest", "WorkerStatusResponse", False, False),
    "/ottoscaler.v1.OttoscalerService/ExecutePipeline":
        ("PipelineRequest", "PipelineProgress", False, True),
    "/ottoscaler.v1.OttoHandlerLogService/ForwardWorkerLogs":
        ("WorkerLogEntry", "LogForwardResponse", True, True),
    "/ottoscaler.v1.OttoHandlerLogService/NotifyWorkerStatus":
        ("WorkerStatusNotification", "WorkerStatusAck", False, False),
}

# message → {field: (number, type, label, enum or message type name)}
MESSAGES: dict[str, dict[str, tuple[int, str, str, str]]] = {
    "ScaleRequest": {
        "task_id": (1, S, ONE, ""), "repository": (2, S, ONE, ""),
        "commit_sha": (3, S, ONE, ""), "worker_count": (4, I32, ONE, ""),
        "build_config": (5, MSG, MAP, "string→string"), "triggered_by": (6, S, ONE, ""),
        "reason": (7, S, ONE, ""), "metadata": (8, MSG, MAP, "string→string")},
    "ScaleResponse": {
        "status": (1, ENUM, ONE, "ottoscaler.v1.ScaleResponse.Status"),
        "message": (2, S, ONE, ""), "processed_count": (3, I32, ONE, ""),
        "worker_pod_names": (4, S, MANY, ""), "started_at": (5, S, ONE, ""),
        "completed_at": (6, S, ONE, "")},
    "WorkerStatusRequest": {
        "task_id": (1, S, ONE, ""), "worker_pod_name": (2, S, ONE, ""),
        "status_filter": (3, S, ONE, "")},
    "WorkerStatusResponse": {
        "total_count": (1, I32, ONE, ""), "running_count": (2, I32, ONE, ""),
        "pending_count": (3, I32, ONE, ""), "succeeded_count": (4, I32, ONE, ""),
        "failed_count": (5, I32, ONE, ""),
        "workers": (6, MSG, MANY, "ottoscaler.v1.WorkerPodStatus")},
    "WorkerPodStatus": {
        "pod_name": (1, S, ONE, ""), "task_id": (2, S, ONE, ""), "status": (3, S, ONE, ""),
        "created_at": (4, S, ONE, ""), "started_at": (5, S, ONE, ""),
        "completed_at": (6, S, ONE, ""), "node_name": (7, S, ONE, ""),
        "pod_ip": (8, S, ONE, ""), "labels": (9, MSG, MAP, "string→string"),
        "error_message": (10, S, ONE, "")},
    "WorkerMetadata": {
        "pod_name": (1, S, ONE, ""), "namespace": (2, S, ONE, ""),
        "node_name": (3, S, ONE, ""), "created_at": (4, S, ONE, ""),
        "labels": (5, MSG, MAP, "string→string")},
    "WorkerLogEntry": {
        "worker_id": (1, S, ONE, ""), "task_id": (2, S, ONE, ""), "timestamp": (3, S, ONE, ""),
        "level": (4, S, ONE, ""), "source": (5, S, ONE, ""), "message": (6, S, ONE, ""),
        "pod_metadata": (7, MSG, ONE, "ottoscaler.v1.WorkerMetadata"),
        "metadata": (8, MSG, MAP, "string→string")},
    "LogForwardResponse": {
        "status": (1, ENUM, ONE, "ottoscaler.v1.LogForwardResponse.Status"),
        "message": (2, S, ONE, ""), "sequence": (3, I64, ONE, ""),
        "throttle_ms": (4, I32, ONE, "")},
    "WorkerStatusNotification": {
        "worker_id": (1, S, ONE, ""), "task_id": (2, S, ONE, ""),
        "status": (3, ENUM, ONE, "ottoscaler.v1.WorkerStatusNotification.StatusType"),
        "timestamp": (4, S, ONE, ""), "reason": (5, S, ONE, ""),
        "metadata": (6, MSG, MAP, "string→string")},
    "WorkerStatusAck": {
        "status": (1, ENUM, ONE, "ottoscaler.v1.WorkerStatusAck.Status"),
        "message": (2, S, ONE, "")},
    "PipelineRequest": {
        "pipeline_id": (1, S, ONE, ""), "name": (2, S, ONE, ""),
        "stages": (3, MSG, MANY, "ottoscaler.v1.PipelineStage"),
        "repository": (4, S, ONE, ""), "commit_sha": (5, S, ONE, ""),
        "triggered_by": (6, S, ONE, ""), "metadata": (7, MSG, MAP, "string→string")},
    "PipelineStage": {
        "stage_id": (1, S, ONE, ""), "type": (2, S, ONE, ""), "name": (3, S, ONE, ""),
        "worker_count": (4, I32, ONE, ""), "depends_on": (5, S, MANY, ""),
        "config": (6, MSG, MAP, "string→string"), "image": (7, S, ONE, ""),
        "command": (8, S, MANY, ""), "args": (9, S, MANY, ""),
        "timeout_seconds": (10, I32, ONE, ""),
        "retry_policy": (11, MSG, ONE, "ottoscaler.v1.RetryPolicy")},
    "RetryPolicy": {
        "max_attempts": (1, I32, ONE, ""), "retry_delay_seconds": (2, I32, ONE, ""),
        "retryable_failures": (3, S, MANY, "")},
    "PipelineProgress": {
        "pipeline_id": (1, S, ONE, ""), "stage_id": (2, S, ONE, ""),
        "status": (3, ENUM, ONE, "ottoscaler.v1.StageStatus"), "message": (4, S, ONE, ""),
        "worker_pod_names": (5, S, MANY, ""), "progress_percentage": (6, I32, ONE, ""),
        "timestamp": (7, S, ONE, ""), "started_at": (8, S, ONE, ""),
        "completed_at": (9, S, ONE, ""), "error_message": (10, S, ONE, ""),
        "metrics": (11, MSG, ONE, "ottoscaler.v1.StageMetrics")},
    "StageMetrics": {
        "duration_seconds": (1, I32, ONE, ""), "successful_workers": (2, I32, ONE, ""),
        "failed_workers": (3, I32, ONE, ""), "total_workers": (4, I32, ONE, ""),
        "avg_cpu_usage": (5, F, ONE, ""), "avg_memory_mb": (6, F, ONE, "")},
}

ENUMS = {
    "ottoscaler.v1.ScaleResponse.Status":
        {"SUCCESS": 0, "FAILED": 1, "PARTIAL_SUCCESS": 2, "ALREADY_PROCESSED": 3},
    "ottoscaler.v1.LogForwardResponse.Status": {"ACK": 0, "RETRY": 1, "DROP": 2},
    "ottoscaler.v1.WorkerStatusNotification.StatusType":
        {"CREATED": 0, "RUNNING": 1, "COMPLETED": 2, "FAILED": 3, "TERMINATED": 4},
    "ottoscaler.v1.WorkerStatusAck.Status": {"RECEIVED": 0, "IGNORED": 1, "ERROR": 2},
    "ottoscaler.v1.StageStatus":
        {"STAGE_PENDING": 0, "STAGE_RUNNING": 1, "STAGE_COMPLETED": 2, "STAGE_FAILED": 3,
         "STAGE_CANCELLED": 4, "STAGE_SKIPPED": 5, "STAGE_RETRYING": 6},
}

_TYPES = {FieldDescriptor.TYPE_STRING: S, FieldDescriptor.TYPE_INT32: I32,
          FieldDescriptor.TYPE_INT64: I64, FieldDescriptor.TYPE_FLOAT: F,
          FieldDescriptor.TYPE_ENUM: ENUM, FieldDescriptor.TYPE_MESSAGE: MSG,
          FieldDescriptor.TYPE_BOOL: BOOL}


def _field(f: FieldDescriptor) -> tuple[int, str, str, str]:
    kind = _TYPES[f.type]
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
        return f.number, kind, MAP, f"{_TYPES[key.type]}→{_TYPES[value.type]}"
    label = MANY if f.is_repeated else ONE
    of = f.message_type.full_name if f.message_type is not None else (
        f.enum_type.full_name if f.enum_type is not None else "")
    return f.number, kind, label, of


def _message(name: str) -> Descriptor:
    return otto.DESCRIPTOR.message_types_by_name[name]


def test_package_and_method_paths() -> None:
    assert otto.DESCRIPTOR.package == "ottoscaler.v1"
    got = {}
    for service in otto.DESCRIPTOR.services_by_name.values():
        for m in service.methods:
            got[f"/{service.full_name}/{m.name}"] = (
                m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
    assert got == METHODS


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_fields(name: str) -> None:
    message = _message(name)
    assert message.full_name == f"ottoscaler.v1.{name}"
    assert {f.name: _field(f) for f in message.fields} == MESSAGES[name]


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_values(name: str) -> None:
    pool = otto.DESCRIPTOR.pool
    enum = pool.FindEnumTypeByName(name)
    assert {v.name: v.number for v in enum.values} == ENUMS[name]


def test_every_message_the_services_use_is_pinned() -> None:
    """Nothing on the wire escapes the table: every message reachable from a method is in it."""
    seen: set[str] = set()
    todo = [t for m in METHODS.values() for t in m[:2]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for f in _message(name).fields:
            if f.message_type is not None and not f.message_type.GetOptions().map_entry:
                todo.append(f.message_type.name)
    assert seen <= set(MESSAGES), sorted(seen - set(MESSAGES))
