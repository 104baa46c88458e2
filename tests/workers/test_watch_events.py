"""Watch events read (pure): ADDED/MODIFIED/DELETED carry their object and resourceVersion, a
BOOKMARK only its version, 410 Gone means list again, any other ERROR is raised."""

from __future__ import annotations

from typing import Any

import pytest

from devtrip_scale.core.errors import DevscaleError
from devtrip_scale.workers.watch import read_event

POD = {"metadata": {"name": "p", "resourceVersion": "42"}}


@pytest.mark.parametrize(("event", "expected"), [
    pytest.param({"type": "ADDED", "object": POD}, ("ADDED", POD, "42"), id="added"),
    pytest.param({"type": "DELETED", "object": POD}, ("DELETED", POD, "42"), id="deleted"),
    pytest.param({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "50"}}},
                 ("BOOKMARK", {"metadata": {"resourceVersion": "50"}}, "50"), id="bookmark"),
    pytest.param({"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}, None,
                 id="gone-lists-again"),
])
def test_events(event: dict[str, Any], expected: object) -> None:
    assert read_event(event) == expected


@pytest.mark.parametrize("event", [
    pytest.param({"type": "ERROR", "object": {"code": 500, "message": "etcd down"}},
                 id="other-error"),
    pytest.param({"type": "SURPRISE", "object": {}}, id="unknown-type"),
])
def test_other_errors_raise(event: dict[str, Any]) -> None:
    with pytest.raises(DevscaleError, match="watch pods"):
        read_event(event)
