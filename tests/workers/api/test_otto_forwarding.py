"""The push direction against a fake Otto-handler (a grpc.aio OttoHandlerLogService with TLS,
in this test, on its own event loop) while a real build runs on the test bed: it answers RETRY,
DROP and a throttle_ms on some lines and is stopped for 10 s mid-build, yet it keeps every log
line the relay relayed exactly once and in order (by sequence number: a line resent after a
break is answered ACK and not kept twice), the DROPped ones are counted in the build's result,
every worker's CREATED → RUNNING → COMPLETED / FAILED arrives in order, the token goes as
metadata and never shows, and the build runs on through the outage."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

import pytest

from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from devtrip_scale.workers.config import OttoHandlerModel
from devtrip_scale.workers.executor import Build
from devtrip_scale.workers.ottohandler import OttoForwarder
from devtrip_scale.workers.pipeline import load_pipeline_text
from devtrip_scale.workers.progress import BuildState
from testbed.net import wait_until
from tests.workers.api.conftest import ApiBed, Pki, StartApi
from tests.workers.api.otto_handler_fake import (
    HANDLER_TOKEN,
    FakeHandlerServer,
    FakeOttoHandler,
)

pytestmark = pytest.mark.integration
RETRY, DROP, THROTTLE = frozenset({3, 11}), frozenset({5, 14}), frozenset({7, 8})


PIPELINE = """\
name: forwarded
defaults:
  image: registry.invalid/ci:1
  resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 100m, memory: 64Mi}}}}
  annotations: {{"devscale.test/run-seconds": "{run}"}}
stages:
  - name: compile
    workers: 2
    annotations: {{"devscale.test/run-seconds": "{run}", "devscale.test/fail-attempts": "1"}}
    retry: {{limit: 1}}
  - name: test
    needs: [compile]
"""


def test_every_line_once_in_order_through_retry_drop_throttle_and_an_outage(
        api_bed: StartApi, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = FakeHandlerServer(pki, FakeOttoHandler(RETRY, DROP, THROTTLE))
    handler.start()
    monkeypatch.setenv("OTTO_HANDLER_TOKEN", HANDLER_TOKEN)
    bed: ApiBed = api_bed(run_seconds=6)
    settings = OttoHandlerModel(address=f"localhost:{handler.port}",
                                ca_file=str(pki.dir / "ca.pem"),
                                token_env="OTTO_HANDLER_TOKEN", report_wait_seconds=60,
                                max_backoff_seconds=1)

    async def attach() -> tuple[OttoForwarder, Build]:
        assert bed.worker is not None
        fwd = OttoForwarder.attach(bed.worker, settings, settings.token(), bed.said.append)
        p = load_pipeline_text(PIPELINE.format(run=8), "forwarded.yaml")
        build_id, _ = await bed.pipelines.start(p, "fwd-1")
        build = bed.pipelines.get(build_id)
        assert build is not None, "started here, so driven here"
        return fwd, build

    fwd, build = bed.call(attach())
    try:
        _forward(bed, handler, fwd, build)
    finally:
        bed.call(fwd.aclose())
        handler.close()


def _forward(bed: ApiBed, handler: FakeHandlerServer, fwd: OttoForwarder,
             build: Build) -> None:
    writing = threading.Event()
    written: dict[str, int] = defaultdict(int)

    def write_logs() -> None:        # each running worker writes a line every 0.3 s
        while not writing.is_set():
            for pod in bed.pods():
                name = pod.metadata.name
                if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None:
                    with contextlib.suppress(Exception):
                        bed.cluster.pod_log(name, [f"{name} line {written[name]}"],
                                            container="worker")
                        written[name] += 1
            time.sleep(0.3)

    writer = threading.Thread(target=write_logs, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(handler.servicer.kept) >= 10, "10 lines kept by the handler",
                   timeout=60)
        handler.stop()                       # the CI server is down for 10 s mid-build
        stopped_at = time.monotonic()
        time.sleep(10)
        handler.start()
        wait_until(lambda: build.done, "the build ended", timeout=120)
    finally:
        writing.set()
        writer.join(10)
    assert build.state is BuildState.SUCCEEDED, build.status()
    assert build.finished is not None
    results = bed.call(_results(bed))
    [result] = [r for r in results if r.get("build_id") == "fwd-1"]
    s = handler.servicer
    relayed = [line for _, line in build.logs.items()]
    assert len(relayed) > 20 and stopped_at
    # every relayed line, once, in sequence order; the DROPped ones counted in the result
    seqs = [seq for seq, _ in s.kept]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert sorted(seq for seq, _ in s.dropped) == sorted(DROP) and s.retried == RETRY, (
        seqs, s.dropped, s.retried, fwd.totals, fwd.sequence, len(relayed))
    assert len(s.kept) + len(s.dropped) == len(relayed)
    assert (result["otto_forwarded"], result["otto_dropped"], result["otto_overflow"],
            result["otto_gave_up"], result["otto_unsettled"]) == (
        str(len(s.kept)), str(len(DROP)), "0", "0", "0"), result
    answered = sorted(s.kept + s.dropped, key=lambda item: item[0])
    for pod in {line.pod for line in relayed}:
        assert [e.message for _, e in answered if e.worker_id == pod] == [
            line.text for line in relayed if line.pod == pod], pod
    print("\n".join(line for line in bed.said if "otto_handler" in line), fwd.totals)
    assert fwd.totals["reconnects"] >= 1, "the outage was seen and the stream reopened"
    # each worker's states, in order: attempt 0 of compile fails, attempt 1 and test succeed
    told: dict[str, list[int]] = defaultdict(list)
    for n in s.statuses:
        told[n.worker_id].append(n.status)
    N = otto.WorkerStatusNotification
    pods = {line.pod for line in relayed} | set(told)
    assert len(told) == 5, told
    for pod in pods:
        end = N.FAILED if pod.endswith("-0") and "compile" in pod else N.COMPLETED
        assert told[pod] == [N.CREATED, N.RUNNING, end], (pod, told[pod])
    assert s.unauthenticated == 0
    assert not any(HANDLER_TOKEN in line for line in bed.said)


async def _results(bed: ApiBed) -> list[dict[str, str]]:
    assert bed.worker is not None
    entries = await bed.worker.redis.xrange(bed.settings.redis.results_stream)
    return [{(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                          else v) for k, v in f.items()}
            for _, f in entries]
