"""The worker RPCs over real gRPC with TLS against the real test bed: ScaleUp creates N pods
under deterministic names and a repeated call creates none; a pod count past the limit or a bad
request is INVALID_ARGUMENT with the reason and creates nothing; ScaleDown cancels; status lists
the pods with the cap numbers; an RBAC denial is PERMISSION_DENIED naming verb and resource."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.tasks import pod_name
from testbed.controlplane import ControlPlane
from testbed.net import wait_until
from tests.conftest import Cluster, service_account_kubeconfig
from tests.workers.api.conftest import TOKEN, ApiBed, StartApi

pytestmark = pytest.mark.integration


def _watched(bed: ApiBed, n: int, task: str = "") -> pb.WorkerStatusResponse:
    stub = bed.ottoscaler()
    got: list[pb.WorkerStatusResponse] = []

    def seen() -> bool:
        got[:] = [stub.GetWorkerStatus(pb.WorkerStatusRequest(task_id=task), timeout=10)]
        return sum(len(t.workers) for t in got[0].tasks) >= n

    wait_until(seen, f"{n} worker(s) in GetWorkerStatus", timeout=30)
    return got[0]


def test_scale_up_creates_n_pods_and_a_repeated_call_creates_none(api_bed: StartApi) -> None:
    bed = api_bed()
    stub = bed.ottoscaler()
    first = stub.ScaleUp(pb.ScaleUpRequest(task_id="build-1", pod_count=3,
                                           metadata={"branch": "main"}), timeout=30)
    names = [pod_name("build-1", i, 0) for i in range(3)]
    assert (first.task_id, list(first.pods), first.created) == ("build-1", names, 3)
    assert sorted(p.metadata.name for p in bed.pods()) == names
    again = stub.ScaleUp(pb.ScaleUpRequest(task_id="build-1", pod_count=3,
                                           metadata={"branch": "main"}), timeout=30)
    assert (list(again.pods), again.created) == (names, 0)
    assert len(bed.pods()) == 3
    env = {e.name: e.value for e in bed.pods()[0].spec.containers[0].env or []}
    assert env.get("DEVSCALE_META_BRANCH") == "main"


@pytest.mark.parametrize(("request_", "reason"), [
    pytest.param(pb.ScaleUpRequest(task_id="big", pod_count=5), "pod_count 5 is outside 1..4",
                 id="past-the-limit"),
    pytest.param(pb.ScaleUpRequest(pod_count=1), "task_id is required", id="no-task-id"),
    pytest.param(pb.ScaleUpRequest(task_id="m", pod_count=1, metadata={"a-b": "x"}),
                 "metadata key 'a-b'", id="bad-metadata"),
])
def test_bad_scale_up_is_invalid_argument_and_creates_nothing(
        api_bed: StartApi, request_: pb.ScaleUpRequest, reason: str) -> None:
    bed = api_bed(limits={"max_workers": 10, "max_pod_count": 4})
    with pytest.raises(grpc.RpcError) as e:
        bed.ottoscaler().ScaleUp(request_, timeout=10)
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason in e.value.details()
    assert bed.pods() == []


def test_status_lists_the_pods_with_the_cap_and_scale_down_cancels(api_bed: StartApi) -> None:
    bed = api_bed(limits={"max_workers": 7})
    stub = bed.ottoscaler()
    stub.ScaleUp(pb.ScaleUpRequest(task_id="t-a", pod_count=2), timeout=30)
    stub.ScaleUp(pb.ScaleUpRequest(task_id="t-b", pod_count=1), timeout=30)
    every = _watched(bed, 3)
    assert [t.task_id for t in every.tasks] == ["t-a", "t-b"]
    assert (every.max_workers, every.live_workers, every.queued_workers) == (7, 3, 0)
    one = _watched(bed, 2, "t-a")
    [task] = one.tasks
    assert [(w.pod, w.index, w.attempt) for w in task.workers] == [
        (pod_name("t-a", 0, 0), 0, 0), (pod_name("t-a", 1, 0), 1, 0)]
    assert sum(task.phases.values()) == 2
    assert all(w.phase in ("Pending", "Running") and not w.has_exit_code for w in task.workers)

    down = stub.ScaleDown(pb.ScaleDownRequest(task_id="t-a"), timeout=30)
    assert (down.task_id, down.pending_deleted + down.running_deleted) == ("t-a", 2)
    wait_until(lambda: {p.metadata.name for p in bed.pods()} == {pod_name("t-b", 0, 0)},
               "t-a's pods deleted, t-b's kept", timeout=30)
    again = stub.ScaleDown(pb.ScaleDownRequest(task_id="t-a"), timeout=30)
    assert again.pending_deleted + again.running_deleted == 0
    with pytest.raises(grpc.RpcError) as e:
        stub.ScaleUp(pb.ScaleUpRequest(task_id="t-a", pod_count=2), timeout=10)
    assert e.value.code() is grpc.StatusCode.ALREADY_EXISTS      # cancelled and reported
    assert "t-a has already ended" in e.value.details()
    assert {p.metadata.name for p in bed.pods()} == {pod_name("t-b", 0, 0)}


def test_rbac_denial_is_permission_denied_naming_verb_and_resource(
        api_bed: StartApi, cluster: Cluster, controlplane: ControlPlane, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "delete"]}]
    cluster.grant(rules)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    bed = api_bed(kubeconfig=kubeconfig)
    with pytest.raises(grpc.RpcError) as e:
        bed.ottoscaler().ScaleUp(pb.ScaleUpRequest(task_id="denied", pod_count=1), timeout=30)
    assert e.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "cannot create pods/w-denied-0-0" in e.value.details()
    assert TOKEN not in e.value.details()


def test_scale_up_waits_under_the_cap_and_completes_after_its_caller_left(
        api_bed: StartApi) -> None:
    bed = api_bed(limits={"max_workers": 2})
    stub = bed.ottoscaler()
    assert stub.ScaleUp(pb.ScaleUpRequest(task_id="first", pod_count=2), timeout=30).created == 2
    with pytest.raises(grpc.RpcError) as e:          # no room: it waits, the caller gives up
        stub.ScaleUp(pb.ScaleUpRequest(task_id="second", pod_count=1), timeout=1)
    assert e.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    status = stub.GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10)
    assert (status.live_workers, status.queued_workers) == (2, 1)
    assert len(bed.pods()) == 2
    stub.ScaleDown(pb.ScaleDownRequest(task_id="first"), timeout=30)
    second = pod_name("second", 0, 0)
    wait_until(lambda: second in {p.metadata.name for p in bed.pods()},
               "the waiting request's pod created once there is room", timeout=30)
    retry = stub.ScaleUp(pb.ScaleUpRequest(task_id="second", pod_count=1), timeout=30)
    assert (list(retry.pods), retry.created) == ([second], 0)
    assert stub.GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10).queued_workers == 0
