"""Task state (pure): pod names are DNS-1123 labels, deterministic and distinct; label values
are sanitised; how a pod ended; the retry policy, where evictions and lost nodes use no retry;
the worker cap admits whole requests in order; a task's result and its one-line summary."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devtrip_scale.workers.tasks import (
    Capacity,
    Outcome,
    PodResult,
    Retry,
    RetryPolicy,
    classify,
    exit_code,
    label_value,
    pod_name,
    summarise,
    task_key,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@pytest.mark.parametrize(("task_id", "key"), [
    pytest.param("build-42", "build-42", id="already-a-label"),
    pytest.param("Build_42", None, id="upper-and-underscore"),
    pytest.param("1700000000000-0", "1700000000000-0", id="stream-entry-id"),
    pytest.param("ci:repo/branch#12", None, id="punctuation"),
    pytest.param("x" * 200, None, id="long"),
    pytest.param("---", None, id="nothing-usable"),
    pytest.param("ünïcode", None, id="non-ascii"),
])
def test_task_keys_are_short_dns_labels(task_id: str, key: str | None) -> None:
    got = task_key(task_id)
    assert DNS_LABEL.match(got) and len(got) <= 40
    assert got == (key or got)
    assert task_key(task_id) == got                       # deterministic


def test_distinct_ids_that_slug_alike_stay_distinct() -> None:
    assert task_key("Build_42") != task_key("build_42") != task_key("build-42")


@pytest.mark.parametrize(("task_id", "index", "attempt"), [
    pytest.param("build-42", 0, 0, id="short"),
    pytest.param("x" * 253, 99999, 999, id="longest"),
    pytest.param("A/B", 3, 1, id="mangled"),
])
def test_pod_names_fit_a_hostname(task_id: str, index: int, attempt: int) -> None:
    name = pod_name(task_id, index, attempt)
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert name.endswith(f"-{index}-{attempt}")
    assert pod_name(task_id, index, attempt + 1) != name


@pytest.mark.parametrize("text", [
    pytest.param("main", id="plain"), pytest.param("feature/login page", id="slash-space"),
    pytest.param("-x-", id="dashes-at-ends"), pytest.param("y" * 100, id="long"),
    pytest.param("", id="empty"), pytest.param("///", id="nothing-usable"),
])
def test_label_values_are_valid(text: str) -> None:
    value = label_value(text)
    assert LABEL_VALUE.match(value) and len(value) <= 63
    if LABEL_VALUE.match(text) and len(text) <= 63:
        assert value == text


def pod(phase: str | None, reason: str | None = None, code: int | None = None
        ) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if reason:
        status["reason"] = reason
    if code is not None:
        status["containerStatuses"] = [{"state": {"terminated": {"exitCode": code}}}]
    return {"status": status}


@pytest.mark.parametrize(("p", "deleted", "outcome"), [
    pytest.param(pod("Pending"), False, None, id="pending"),
    pytest.param(pod("Running"), False, None, id="running"),
    pytest.param(pod("Succeeded", code=0), False, Outcome.SUCCEEDED, id="succeeded"),
    pytest.param(pod("Failed", code=3), False, Outcome.FAILED, id="exit-3"),
    pytest.param(pod("Failed", "DeadlineExceeded"), False, Outcome.FAILED, id="deadline"),
    pytest.param(pod("Failed", "Evicted"), False, Outcome.EVICTED, id="evicted"),
    pytest.param(pod("Failed", "NodeLost"), False, Outcome.EVICTED, id="node-lost"),
    pytest.param(pod("Running"), True, Outcome.LOST, id="deleted-while-running"),
    pytest.param(pod("Succeeded"), True, Outcome.SUCCEEDED, id="deleted-after-success"),
])
def test_classify(p: dict[str, Any], deleted: bool, outcome: Outcome | None) -> None:
    assert classify(p, deleted) == outcome


def test_exit_code() -> None:
    assert exit_code(pod("Failed", code=7)) == 7 and exit_code(pod("Running")) is None


POLICY = RetryPolicy(max_retries=2, max_disruptions=1)


@pytest.mark.parametrize(("outcome", "failures", "disruptions", "expected"), [
    pytest.param(Outcome.SUCCEEDED, 0, 0, None, id="success-is-final"),
    pytest.param(Outcome.FAILED, 0, 0, Retry(1, 0), id="first-failure-retried"),
    pytest.param(Outcome.FAILED, 1, 0, Retry(2, 0), id="second-failure-retried"),
    pytest.param(Outcome.FAILED, 2, 0, None, id="retries-used-up"),
    pytest.param(Outcome.EVICTED, 2, 0, Retry(2, 1), id="eviction-uses-no-retry"),
    pytest.param(Outcome.LOST, 0, 0, Retry(0, 1), id="lost-node-uses-no-retry"),
    pytest.param(Outcome.LOST, 0, 1, None, id="disruptions-bounded"),
    pytest.param(Outcome.CANCELLED, 0, 0, None, id="cancelled-is-final"),
])
def test_retry_policy(outcome: Outcome, failures: int, disruptions: int,
                      expected: Retry | None) -> None:
    assert POLICY.next(outcome, failures, disruptions) == expected


def test_capacity_admits_whole_requests_in_order() -> None:
    cap = Capacity(limit=3)
    assert cap.request("r1", ["a", "b"])
    assert not cap.request("r2", ["c", "d"])       # 2 + 2 > 3: waits
    assert not cap.request("r3", ["e"])            # would fit, but r2 is first (FIFO)
    assert cap.waiting == 3
    assert cap.release(["a"]) == ["r2"]            # 1 + 2 = 3 fits; r3 still waits
    assert cap.release(["b"]) == ["r3"]
    assert cap.live == {"c", "d", "e"} and cap.waiting == 0


def test_capacity_a_request_larger_than_the_cap_runs_alone() -> None:
    cap = Capacity(limit=2)
    assert cap.request("big", ["a", "b", "c"])
    assert not cap.request("next", ["d"])
    assert cap.release(["a", "b", "c"]) == ["next"]


def test_capacity_withdraw_and_known_pods() -> None:
    cap = Capacity(limit=1)
    cap.hold("x")
    assert not cap.request("r", ["y"])
    cap.withdraw("r")
    assert cap.release(["x"]) == [] and cap.waiting == 0
    assert cap.request("again", ["z"]) and cap.request("same-pods", ["z"])   # z counted once


@pytest.mark.parametrize(("outcomes", "cancelled", "expected"), [
    pytest.param([Outcome.SUCCEEDED, Outcome.SUCCEEDED], False, "succeeded", id="all-ok"),
    pytest.param([Outcome.SUCCEEDED, Outcome.FAILED], False, "failed", id="one-failed"),
    pytest.param([Outcome.SUCCEEDED, Outcome.LOST], False, "failed", id="one-lost"),
    pytest.param([Outcome.SUCCEEDED, Outcome.CANCELLED], False, "cancelled", id="cancelled"),
    pytest.param([Outcome.SUCCEEDED], True, "cancelled", id="cancelled-after-success"),
])
def test_summarise(outcomes: list[Outcome], cancelled: bool, expected: str) -> None:
    pods = [PodResult(i, o, 1, 0 if o is Outcome.SUCCEEDED else 3) for i, o in
            enumerate(outcomes)]
    assert summarise("t", reversed(pods), cancelled, 2.0).outcome == expected


def test_summary_says_counts_codes_retries_and_time() -> None:
    result = summarise("build-42", [PodResult(0, Outcome.SUCCEEDED, 1, 0, 1.0),
                                    PodResult(1, Outcome.FAILED, 3, 3, 2.0)], False, 12.34)
    assert result.summary() == ("task build-42: failed, 1 of 2 pods succeeded, 1 failed "
                                "(exit codes 3), 2 retries, 12.3s")
    assert PodResult.decode(result.pods[1].encode()) == result.pods[1]
