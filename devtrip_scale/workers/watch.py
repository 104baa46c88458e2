"""One label-selected list-then-watch of every worker pod (no per-pod polling).

List (which gives a resourceVersion), then watch from it with bookmarks; when the watch ends,
watch again from the last version seen; on 410 Gone list again, and report the pods that went
missing in between as deleted. A failed connection backs off (bounded) and lists again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from devtrip_scale.core.backoff import Backoff
from devtrip_scale.core.errors import DevscaleError
from devtrip_scale.kube.aio import AsyncKube

log = logging.getLogger("devscale.workers")
Handler = Callable[[str, dict[str, Any]], None]   # ("ADDED"|"MODIFIED"|"DELETED", pod)


class PodWatch:
    """The cache of worker pods by name; `handler` sees every change."""

    def __init__(self, kube: AsyncKube, selector: str, handler: Handler,
                 max_backoff: float = 30.0) -> None:
        self.kube = kube
        self.selector = selector
        self.handler = handler
        self.pods: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()     # set after the first list
        self.connected = False
        self.problem: str | None = None
        self.relists = 0
        self.max_backoff = max_backoff

    async def run(self) -> None:
        backoff = Backoff(0.5, self.max_backoff, jitter=0.2)
        while True:
            try:
                version: str | None = await self._relist()
                self.connected, self.problem = True, None
                backoff.reset()
                while version is not None:
                    version = await self._watch(version)
            except DevscaleError as e:
                self.connected, self.problem = False, str(e)
                log.warning("pod watch: %s; again in %.1fs", e, backoff.current)
                await asyncio.sleep(backoff.next())

    async def _relist(self) -> str:
        items, version = await self.kube.list_pods(self.selector)
        self.relists += 1
        seen = {}
        for pod in items:
            seen[pod["metadata"]["name"]] = pod
        gone = [p for name, p in self.pods.items() if name not in seen]
        for pod in gone:
            self.pods.pop(pod["metadata"]["name"], None)
            self.handler("DELETED", pod)
        for name, pod in seen.items():
            kind = "MODIFIED" if name in self.pods else "ADDED"
            self.pods[name] = pod
            self.handler(kind, pod)
        self.synced.set()
        return version

    async def _watch(self, version: str) -> str | None:
        """Watch from `version`; the version to watch from next, or None to list again."""
        async for event in self.kube.watch_pods(self.selector, version):
            step = read_event(event)
            if step is None:
                return None
            kind, obj, version = step[0], step[1], step[2] or version
            if kind == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = obj
            self.handler(kind, obj)
        return version


def read_event(event: dict[str, Any]) -> tuple[str, dict[str, Any], str | None] | None:
    """A watch event as (type, object, its resourceVersion); None for 410 Gone (list again).
    Any other ERROR raises (pure)."""
    kind, obj = str(event.get("type")), event.get("object") or {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            return None
        raise DevscaleError(f"watch pods: {obj.get('message', obj)}")
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        raise DevscaleError(f"watch pods: unexpected event type {kind!r}")
    return kind, obj, (obj.get("metadata") or {}).get("resourceVersion")
