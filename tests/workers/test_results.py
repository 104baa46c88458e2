"""A task's outcome as told (pure): the results stream entry, the Event the API server is
given, the failure notice, and what a task tells: once per quiet period, resolved by the next
success (the quiet-period rules of `check`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtrip_scale.notify import NotifyState
from devtrip_scale.workers.results import failure_notice, result_fields, task_event, tell
from devtrip_scale.workers.tasks import Outcome, PodResult, TaskResult, summarise

RESULT = summarise("Build/42", [PodResult(0, Outcome.SUCCEEDED, 1, 0, 1.5, "w-a-0-0"),
                                PodResult(1, Outcome.FAILED, 2, 3, 2.0, "w-a-1-1")], False, 9.0)


def test_result_fields() -> None:
    fields = result_fields(RESULT, "1-0", "c1")
    assert fields["outcome"] == "failed" and fields["pods_succeeded"] == "1"
    assert fields["pods_failed"] == "1" and fields["seconds"] == "9.000"
    assert [w["exitCode"] for w in json.loads(fields["workers"])] == [0, 3]
    assert all(isinstance(v, str) for v in fields.values())


def test_event_body() -> None:
    body = task_event(RESULT, "w-a-0-0", "ci", datetime(2026, 1, 1, tzinfo=UTC))
    assert body["type"] == "Warning" and body["reason"] == "TaskFailed"
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "w-a-0-0",
                                      "namespace": "ci"}
    assert body["firstTimestamp"] == "2026-01-01T00:00:00Z" and body["count"] == 1
    assert "exit codes 3" in body["message"]


def test_failure_notice() -> None:
    notice = failure_notice(RESULT)
    assert notice.kind == "failed" and notice.key == "failed:workers"
    assert notice.title == "worker task Build/42 failed" and "exit codes 3" in notice.text


T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUIET = timedelta(minutes=30)
OK = summarise("ok", [PodResult(0, Outcome.SUCCEEDED, 1, 0)], False, 1.0)
CANCELLED = summarise("stop", [PodResult(0, Outcome.CANCELLED, 1)], False, 1.0)


@pytest.mark.parametrize(("steps", "told"), [
    pytest.param([(RESULT, 0)], ["failed"], id="a-failure-is-told"),
    pytest.param([(RESULT, 0), (RESULT, 10)], ["failed"], id="again-within-quiet-period"),
    pytest.param([(RESULT, 0), (RESULT, 31)], ["failed", "failed"], id="again-after-it"),
    pytest.param([(RESULT, 0), (OK, 5)], ["failed", "recovered"], id="success-resolves"),
    pytest.param([(OK, 0)], [], id="success-alone-is-quiet"),
    pytest.param([(CANCELLED, 0)], [], id="cancelled-is-quiet"),
    pytest.param([(RESULT, 0), (OK, 5), (RESULT, 6)], ["failed", "recovered", "failed"],
                 id="fails-again-after-resolving"),
])
def test_tell(steps: list[tuple[TaskResult, int]], told: list[str]) -> None:
    state, kinds = NotifyState(), []
    for result, minute in steps:
        send, state = tell(result, state, T0 + timedelta(minutes=minute), QUIET)
        kinds += [n.kind for n in send]
    assert kinds == told
