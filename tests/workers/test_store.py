"""workers/store.py's Spec (pure): a task's spec survives its JSON round trip through Redis,
a pipeline stage's too (build, stage, pod template, retry policy), and a spec written before
stages existed still reads."""

from __future__ import annotations

import json

import pytest

from devtrip_scale.workers.store import Spec

SPECS = [
    pytest.param(Spec("t1", 3, "1-0", (("branch", "main"),)), id="stream-task"),
    pytest.param(Spec("b-1/build", 2, "", (), "b-1", "build", '{"image": "x"}',
                      '{"limit": 1}'), id="stage-task"),
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trip(spec: Spec) -> None:
    assert Spec.decode(spec.encode()) == spec


def test_a_plain_task_spec_stays_as_it_was() -> None:
    assert set(json.loads(Spec("t1", 1, "1-0").encode())) == {"taskId", "podCount", "entryId",
                                                             "metadata"}
    old = json.dumps({"taskId": "t1", "podCount": 1, "entryId": "1-0", "metadata": {}})
    assert Spec.decode(old) == Spec("t1", 1, "1-0")
