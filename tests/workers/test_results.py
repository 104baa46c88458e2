"""A task's outcome as told (pure): the results stream entry, the Event the API server is
given, and the failure notice with its quiet-period key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from devtrip_scale.workers.results import event_body, failure_notice, result_fields
from devtrip_scale.workers.tasks import Outcome, PodResult, summarise

RESULT = summarise("Build/42", [PodResult(0, Outcome.SUCCEEDED, 1, 0, 1.5, "w-a-0-0"),
                                PodResult(1, Outcome.FAILED, 2, 3, 2.0, "w-a-1-1")], False, 9.0)


def test_result_fields() -> None:
    fields = result_fields(RESULT, "1-0", "c1")
    assert fields["outcome"] == "failed" and fields["pods_succeeded"] == "1"
    assert fields["pods_failed"] == "1" and fields["seconds"] == "9.000"
    assert [w["exitCode"] for w in json.loads(fields["workers"])] == [0, 3]
    assert all(isinstance(v, str) for v in fields.values())


def test_event_body() -> None:
    body = event_body(RESULT, "w-a-0-0", "ci", datetime(2026, 1, 1, tzinfo=UTC))
    assert body["type"] == "Warning" and body["reason"] == "TaskFailed"
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "w-a-0-0",
                                      "namespace": "ci"}
    assert body["firstTimestamp"] == "2026-01-01T00:00:00Z" and body["count"] == 1
    assert "exit codes 3" in body["message"]


def test_failure_notice_key_is_per_task() -> None:
    notice = failure_notice(RESULT)
    assert notice.kind == "failed" and notice.key.startswith("failed:task:build-42-")
    assert notice.title == "worker task Build/42 failed"
