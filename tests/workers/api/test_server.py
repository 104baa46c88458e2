"""The API server over real gRPC with TLS on loopback: calls without a token, with a wrong one,
or reflection without one are UNAUTHENTICATED and run nothing; health answers without a token;
reflection lists the services; mTLS refuses a client without a certificate (or with one from
another CA) in the handshake and lets a CA-signed one through; health says NOT_SERVING while a
shutdown drains and waits for the streams still open, and while the worker server cannot
watch its pods."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devtrip_scale.workers.api.v1 import devscale_pb2 as pb
from devtrip_scale.workers.api.v1 import devscale_pb2_grpc as pb_grpc
from testbed.controlplane import ControlPlane
from testbed.net import wait_until
from tests.conftest import Cluster, service_account_kubeconfig
from tests.workers.api.conftest import TOKEN, ApiBed, StartApi

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("devscale.v1.OttoscalerService", "devscale.v1.LogStreamingService")


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status)


def _stub(channel: grpc.Channel) -> pb_grpc.OttoscalerServiceStub:
    return pb_grpc.OttoscalerServiceStub(channel)


def _services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    return sorted(s.name for a in answers for s in a.list_services_response.service)


@pytest.mark.parametrize(("token", "details"), [
    pytest.param(None, "missing bearer token", id="no-token"),
    pytest.param("tok-guessed", "wrong token", id="wrong-token"),
    pytest.param(TOKEN[:-1], "wrong token", id="almost-the-token"),
])
def test_unauthenticated_calls_are_refused_and_run_nothing(
        api_bed: StartApi, token: str | None, details: str) -> None:
    bed = api_bed()
    stub = bed.ottoscaler(token=token)
    calls = [lambda: stub.ScaleUp(pb.ScaleUpRequest(task_id="x", pod_count=2), timeout=10),
             lambda: stub.ScaleDown(pb.ScaleDownRequest(task_id="x"), timeout=10),
             lambda: stub.GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10),
             lambda: list(stub.ExecutePipeline(pb.ExecutePipelineRequest(
                 pipeline_yaml="stages: []"), timeout=10)),
             lambda: _services(bed.channel(token=token))]
    for call in calls:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert e.value.details().startswith(details)
        assert TOKEN not in e.value.details() and (token is None or token not in
                                                     e.value.details())
    time.sleep(0.5)
    assert bed.pods() == []
    assert bed.api is not None and bed.api.auth.refused == len(calls)
    assert not any(TOKEN in line or (token and token in line) for line in bed.said)


def test_health_answers_without_a_token_and_reflection_lists_the_services(
        api_bed: StartApi) -> None:
    bed = api_bed()
    anonymous = bed.channel(token=None)
    for service in ("", *SERVICES):
        assert _health(anonymous, service) == SERVING
    with pytest.raises(grpc.RpcError) as e:
        _health(anonymous, "devscale.v1.NoSuchService")
    assert e.value.code() is grpc.StatusCode.NOT_FOUND
    listed = _services(bed.channel())
    assert set(SERVICES) <= set(listed)
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(listed)


def test_a_client_that_does_not_trust_the_server_certificate_fails_the_handshake(
        api_bed: StartApi) -> None:
    bed = api_bed()
    channel = bed.channel(ca=bed.pki.stranger.cert_pem.bytes())
    with pytest.raises(grpc.RpcError) as e:
        _health(channel)
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE


def test_mtls_refuses_clients_without_a_ca_signed_certificate(api_bed: StartApi) -> None:
    bed = api_bed(auth="mtls", token=None)
    for cert in (None, bed.pki.client(bed.pki.stranger)):
        channel = bed.channel(token=None, cert=cert)
        with pytest.raises(grpc.RpcError) as e:       # the handshake fails: nothing is served
            _health(channel)
        assert e.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as e:
            _stub(channel).ScaleUp(pb.ScaleUpRequest(task_id="m", pod_count=1),
                                   timeout=10)
        assert e.value.code() is grpc.StatusCode.UNAVAILABLE
    assert bed.pods() == []
    trusted = bed.channel(token=None, cert=bed.pki.client())
    assert _health(trusted) == SERVING
    answer = _stub(trusted).ScaleUp(pb.ScaleUpRequest(task_id="m", pod_count=1),
                                    timeout=30)
    assert answer.created == 1 and len(bed.pods()) == 1
    assert set(SERVICES) <= set(_services(trusted))


def test_mtls_and_token_both_required(api_bed: StartApi) -> None:
    bed = api_bed(auth="both")
    cert = bed.pki.client()
    with pytest.raises(grpc.RpcError) as e:
        _stub(bed.channel(token=None, cert=cert)).GetWorkerStatus(
            pb.WorkerStatusRequest(), timeout=10)
    assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        _stub(bed.channel(cert=None)).GetWorkerStatus(pb.WorkerStatusRequest(),
                                                      timeout=10)
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE
    got = _stub(bed.channel(cert=cert)).GetWorkerStatus(pb.WorkerStatusRequest(),
                                                        timeout=10)
    assert got.max_workers == bed.settings.limits.max_workers


def _watch(channel: grpc.Channel) -> Iterator[health_pb2.HealthCheckResponse]:
    stub = health_pb2_grpc.HealthStub(channel)
    return iter(stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60))


def test_health_is_not_serving_during_shutdown(api_bed: StartApi) -> None:
    bed: ApiBed = api_bed()
    watch = _watch(bed.channel(token=None))          # a long stream, open through shutdown
    assert next(watch).status == SERVING
    assert bed.api is not None
    grace, drain = 3.0, 1.5
    started = time.monotonic()
    stopped: Future[None] = Future()

    def shut() -> None:
        try:
            assert bed.api is not None
            bed.call(bed.api.shutdown(grace, drain=drain), timeout=30)
            stopped.set_result(None)
        except BaseException as e:
            stopped.set_exception(e)

    threading.Thread(target=shut, daemon=True).start()
    assert next(watch).status == NOT_SERVING           # the open stream is told at once
    fresh = bed.channel(token=None)                    # a new client, during the drain
    assert _health(fresh) == NOT_SERVING
    assert _health(fresh, SERVICES[0]) == NOT_SERVING
    assert time.monotonic() - started < drain
    assert not stopped.done()                          # the stream keeps it in its grace
    stopped.result(timeout=grace + drain + 10)
    took = time.monotonic() - started
    assert drain + grace - 0.5 <= took <= drain + grace + 5
    with pytest.raises(grpc.RpcError) as e:            # the open stream was ended
        next(watch)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    with pytest.raises(grpc.RpcError) as e:            # nothing is accepted any more
        _health(bed.channel(token=None))
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "gRPC API stopped" in bed.said


def test_health_follows_the_worker_servers_readiness(
        api_bed: StartApi, cluster: Cluster, controlplane: ControlPlane, tmp_path: Path) -> None:
    from kubernetes import client

    ns = cluster.namespace
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]}]
    cluster.grant(rules)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    kubeconfig = service_account_kubeconfig(cluster, controlplane, tmp_path / "sa.yaml")
    bed = api_bed(kubeconfig=kubeconfig, ready=False)       # the watch cannot list pods
    anonymous = bed.channel(token=None)
    for service in ("", *SERVICES):
        assert _health(anonymous, service) == NOT_SERVING
    with pytest.raises(grpc.RpcError) as e:
        _stub(bed.channel()).GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10)
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "has not listed the pods yet" in e.value.details()
    assert "cannot list pods" in e.value.details()
    rules[0]["verbs"] = ["create", "delete", "list", "watch"]      # granted: it comes up
    rbac.patch_namespaced_role("w", ns, {"rules": rules})
    wait_until(lambda: _health(anonymous) == SERVING, "health SERVING once the watch lists",
               timeout=60)
    assert _health(anonymous, SERVICES[0]) == SERVING
    got = _stub(bed.channel()).GetWorkerStatus(pb.WorkerStatusRequest(), timeout=10)
    assert list(got.tasks) == []
