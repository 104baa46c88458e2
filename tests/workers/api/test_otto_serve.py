"""`devscale workers serve` with `otto_handler:` in workers.yaml, as a real process: a scale_up
from the stream runs two workers whose log lines and CREATED → RUNNING → COMPLETED reach a fake
Otto-handler over TLS with the token from the environment (never printed), in order and once;
a worker cancelled while it runs (scale_down) is told CREATED → RUNNING → TERMINATED."""

from __future__ import annotations

from collections import defaultdict

import pytest

from devtrip_scale.workers.api.ottoscaler.v1 import ottoscaler_pb2 as otto
from testbed.net import wait_until
from tests.workers.api.conftest import Pki
from tests.workers.api.otto_handler_fake import HANDLER_TOKEN, FakeHandlerServer
from tests.workers.conftest import Workers

pytestmark = pytest.mark.integration
N = otto.WorkerStatusNotification


def test_serve_pushes_logs_and_worker_states_to_the_otto_handler(workers: Workers,
                                                                 pki: Pki) -> None:
    handler = FakeHandlerServer(pki)
    handler.start()
    try:
        workers.configure(run_seconds=4, otto_handler={
            "address": f"localhost:{handler.port}", "ca_file": str(pki.dir / "ca.pem"),
            "token_env": "OTTO_HANDLER_TOKEN"})
        server = workers.start(env={"OTTO_HANDLER_TOKEN": HANDLER_TOKEN})
        workers.submit(type="scale_up", pod_count=2, task_id="pushed")
        workers.submit(type="scale_up", pod_count=1, task_id="stopped")
        pods = workers.wait_pods(2, "pushed", phase="Running")
        [stopped] = workers.wait_pods(1, "stopped", phase="Running")
        workers.submit(type="scale_down", task_id="stopped")    # ended before it finished
        workers.log_pods(pods, lambda name: [f"{name} step {i}" for i in range(3)])
        results = workers.wait_results(2, timeout=60)
        assert {r["task_id"]: r["outcome"] for r in results} == {"pushed": "succeeded",
                                                                 "stopped": "cancelled"}
        s = handler.servicer
        names = sorted(p.metadata.name for p in pods)

        def told() -> dict[str, list[int]]:
            out: dict[str, list[int]] = defaultdict(list)
            for n in s.statuses:
                out[n.worker_id].append(n.status)
            return out

        wait_until(lambda: all(told()[n] == [N.CREATED, N.RUNNING, N.COMPLETED]
                               for n in names), "every worker's states", timeout=30)
        wait_until(lambda: told()[stopped.metadata.name] == [N.CREATED, N.RUNNING,
                                                            N.TERMINATED],
                   "the stopped worker TERMINATED", timeout=30)
        wait_until(lambda: len(s.kept) == 6, "six lines", timeout=30)
        for name in names:
            assert [e.message for _, e in s.kept if e.worker_id == name] == [
                f"{name} step {i}" for i in range(3)]
        assert [seq for seq, _ in s.kept] == sorted(seq for seq, _ in s.kept)
        assert all(e.task_id == "pushed" for _, e in s.kept)
        assert {n.task_id for n in s.statuses} == {"pushed", "stopped"}
        assert s.unauthenticated == 0
        assert HANDLER_TOKEN not in server.output()
        assert "otto_handler: forwarding logs to" in server.output()
    finally:
        workers.stop_all()
        handler.close()
