"""The worker pod manifest (pure): restartPolicy Never, the deadline, requests and limits,
the labels the watch selects on, request metadata as env and sanitised labels."""

from __future__ import annotations

from devtrip_scale.workers import SELECTOR
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.pods import worker_pod

TEMPLATE = WorkerModel.model_validate({
    "image": "w:1", "command": ["run"], "args": ["--fast"], "env": {"QUEUE": "builds"},
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                  "limits": {"cpu": "1", "memory": "1Gi"}},
    "active_deadline_seconds": 600, "labels": {"team": "ci"},
    "annotations": {"note": "x"}, "service_account": "runner"})


def test_the_pod_from_the_template() -> None:
    pod = worker_pod(TEMPLATE, "Build/42", 2, 1, 3, "1-0", (("branch", "feature/x y"),))
    meta, spec = pod["metadata"], pod["spec"]
    [c] = spec["containers"]
    assert meta["name"].startswith("w-build-42-") and meta["name"].endswith("-2-1")
    key, value = SELECTOR.split("=")
    assert meta["labels"][key] == value and meta["labels"]["team"] == "ci"
    assert meta["labels"]["devscale.devtrip.io/index"] == "2"
    assert meta["labels"]["devscale.devtrip.io/attempt"] == "1"
    assert meta["labels"]["meta.devscale.devtrip.io/branch"].startswith("feature-x-y-")
    assert meta["annotations"]["devscale.devtrip.io/task-id"] == "Build/42"
    assert meta["annotations"]["note"] == "x"
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 600
    assert spec["serviceAccountName"] == "runner"
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "1", "memory": "1Gi"}}
    assert c["command"] == ["run"] and c["args"] == ["--fast"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"QUEUE": "builds", "DEVSCALE_TASK_ID": "Build/42",
                   "DEVSCALE_WORKER_INDEX": "2", "DEVSCALE_WORKER_COUNT": "3",
                   "DEVSCALE_ATTEMPT": "1", "DEVSCALE_META_BRANCH": "feature/x y"}


def test_the_same_request_gives_the_same_pod() -> None:
    assert worker_pod(TEMPLATE, "t", 0, 0, 1, "1-0") == worker_pod(TEMPLATE, "t", 0, 0, 1, "1-0")


def test_a_stage_pod_carries_its_build_and_stage() -> None:
    pod = worker_pod(TEMPLATE, "b-1234abcd/unit-tests", 0, 1, 2, "", build_id="b-1234abcd",
                     stage="unit-tests")
    meta = pod["metadata"]
    assert meta["labels"]["devscale.devtrip.io/build"] == "b-1234abcd"
    assert meta["labels"]["devscale.devtrip.io/stage"] == "unit-tests"
    assert meta["annotations"]["devscale.devtrip.io/build-id"] == "b-1234abcd"
    assert meta["annotations"]["devscale.devtrip.io/stage"] == "unit-tests"
    assert meta["name"].endswith("-0-1") and len(meta["name"]) <= 63
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert (env["DEVSCALE_BUILD_ID"], env["DEVSCALE_STAGE"]) == ("b-1234abcd", "unit-tests")


def test_a_plain_task_pod_has_no_build_labels() -> None:
    pod = worker_pod(TEMPLATE, "t1", 0, 0, 1, "1-0")
    assert not any("build" in k or "stage" in k for k in pod["metadata"]["labels"])
