"""Stream entries as requests (pure): scale_up and scale_down with their defaults, and every
reason an entry is dead-lettered; encode() writes what parse() reads."""

from __future__ import annotations

import pytest

from devtrip_scale.workers.requests import Rejected, ScaleDown, ScaleUp, encode, parse

ID = "1700000000000-0"


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({"type": "scale_up", "pod_count": "3", "task_id": "build-42"},
                 ScaleUp(ID, "build-42", 3), id="scale-up"),
    pytest.param({"type": "scale_up", "pod_count": "1"}, ScaleUp(ID, ID, 1),
                 id="task-id-defaults-to-entry-id"),
    pytest.param({"type": "scale_up", "pod_count": " 2 ", "metadata": '{"b": "x", "a": 7}'},
                 ScaleUp(ID, ID, 2, (("a", "7"), ("b", "x"))), id="metadata-sorted-numbers-ok"),
    pytest.param({"type": "scale_down", "task_id": "build-42"}, ScaleDown(ID, "build-42"),
                 id="scale-down"),
])
def test_valid_entries(fields: dict[str, str], expected: object) -> None:
    assert parse(ID, fields, max_pod_count=100) == expected


@pytest.mark.parametrize(("fields", "reason"), [
    pytest.param({}, "no type field", id="no-type"),
    pytest.param({"type": "scale"}, "'scale' is not scale_up or scale_down", id="bad-type"),
    pytest.param({"type": "scale_up", "pod_cuont": "3"}, "unknown field(s) 'pod_cuont'",
                 id="misspelt-field"),
    pytest.param({"type": "scale_up"}, "needs pod_count", id="no-pod-count"),
    pytest.param({"type": "scale_up", "pod_count": "-1"}, "not a whole number",
                 id="negative-count"),
    pytest.param({"type": "scale_up", "pod_count": "0"}, "outside 1..100", id="zero-pods"),
    pytest.param({"type": "scale_up", "pod_count": "101"}, "outside 1..100", id="over-the-cap"),
    pytest.param({"type": "scale_up", "pod_count": "1", "task_id": " "}, "task_id",
                 id="blank-task"),
    pytest.param({"type": "scale_up", "pod_count": "1", "task_id": "x" * 254}, "1-253",
                 id="task-too-long"),
    pytest.param({"type": "scale_up", "pod_count": "1", "metadata": "[1]"},
                 "JSON object", id="metadata-a-list"),
    pytest.param({"type": "scale_up", "pod_count": "1", "metadata": '{"9x": "a"}'},
                 "must start with a letter", id="metadata-bad-key"),
    pytest.param({"type": "scale_up", "pod_count": "1", "metadata": '{"a": {"b": 1}}'},
                 "string or a number", id="metadata-nested"),
    pytest.param({"type": "scale_up", "pod_count": "1", "metadata": '{"a": true}'},
                 "string or a number", id="metadata-bool"),
    pytest.param({"type": "scale_down"}, "needs the task_id", id="scale-down-no-task"),
    pytest.param({"type": "scale_down", "task_id": "t", "pod_count": "2"},
                 "only task_id, not pod_count", id="scale-down-with-count"),
])
def test_refused_entries_name_the_reason(fields: dict[str, str], reason: str) -> None:
    got = parse(ID, fields, max_pod_count=100)
    assert isinstance(got, Rejected) and got.entry_id == ID
    assert reason in got.reason


@pytest.mark.parametrize("request_", [
    pytest.param(ScaleUp(ID, "t-1", 5, (("branch", "main"),)), id="scale-up-metadata"),
    pytest.param(ScaleUp(ID, "t-1", 1), id="scale-up"),
    pytest.param(ScaleDown(ID, "t-1"), id="scale-down"),
])
def test_encode_round_trips(request_: ScaleUp | ScaleDown) -> None:
    assert parse(ID, encode(request_), max_pod_count=10) == request_
