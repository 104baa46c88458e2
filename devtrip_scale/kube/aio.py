"""An async Kubernetes client: httpx.AsyncClient over the REST API, built from the kubeconfig
(or in-cluster config) that devtrip_scale.kube's sync loader resolves.

Only what workers need: pods (create, delete, list, watch, log) and events (create). Errors are
mapped by kube.errors, as the sync client's are: 403 names the verb and resource and the RBAC
rule that grants it; 409 AlreadyExists on create is success; every call has (connect, read)
timeouts. API writes pass a token bucket (the config's rate limit). Requests are counted per
verb and resource.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import httpx

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeNotFound
from devtrip_scale.kube import TIMEOUT
from devtrip_scale.kube.errors import api_error, httpx_cause, unreachable

WATCH_SECONDS = 240          # the server ends each watch after this; we watch again from there
# A followed log may be quiet for a long time; after this long without a byte the follow ends
# with a read-timeout KubeError and the caller follows again from the last line it had.
FOLLOW_READ_SECONDS = 120.0
FOLLOW_CONNECTIONS = 2000    # followed logs have a pool of their own: they never queue the rest


class RateLimit:
    """A token bucket: `rate` writes per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class AsyncKube:
    """Pods and Events of one namespace."""

    def __init__(self, configuration: Any, namespace: str, *, writes_per_second: float = 20,
                 write_burst: int = 40) -> None:
        self._cfg = configuration
        self.namespace = namespace
        self.base = str(configuration.host).rstrip("/")
        self.limit = RateLimit(writes_per_second, write_burst)
        self.calls: Counter[str] = Counter()
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
            if configuration.cert_file:
                verify.load_cert_chain(configuration.cert_file, configuration.key_file)
        self._http = httpx.AsyncClient(
            verify=verify, timeout=httpx.Timeout(TIMEOUT[1], connect=TIMEOUT[0]),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        # long-lived pods/log?follow streams: a pool of their own, so 100+ of them never
        # queue the creates, deletes and lists behind them
        self._streams = httpx.AsyncClient(
            verify=verify, timeout=httpx.Timeout(FOLLOW_READ_SECONDS, connect=TIMEOUT[0]),
            limits=httpx.Limits(max_connections=FOLLOW_CONNECTIONS,
                                max_keepalive_connections=0))
        self._opening: set[asyncio.Future[Any]] = set()   # follows connecting or closing

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str,
                **kwargs: Any) -> AsyncKube:
        """From the same sources as every other devscale command (see kube.connect)."""
        from devtrip_scale.kube import connect

        api = connect(kubeconfig, context)
        try:
            return cls(api.configuration, namespace, **kwargs)
        finally:
            api.close()

    async def aclose(self) -> None:
        if self._opening:                  # streams still connecting, or being closed
            await asyncio.wait(set(self._opening), timeout=TIMEOUT[0] + 1)
        await self._http.aclose()
        await self._streams.aclose()

    def _headers(self) -> dict[str, str]:
        token = self._cfg.get_api_key_with_prefix("authorization")  # refreshed when it must be
        return {"Authorization": token} if token else {}

    async def _call(self, method: str, path: str, verb: str, resource: str,
                    name: str | None = None, *, params: dict[str, Any] | None = None,
                    body: Any = None, timeout: float | None = None) -> httpx.Response:
        if method in ("POST", "DELETE", "PATCH", "PUT"):
            await self.limit.take()
        self.calls[f"{verb} {resource}"] += 1
        try:
            response = await self._http.request(
                method, self.base + path, params=params, json=body, headers=self._headers(),
                timeout=None if timeout is None else httpx.Timeout(timeout, connect=TIMEOUT[0]))
        except httpx.HTTPError as e:
            raise self._transport(e, verb, resource, name) from None
        if response.status_code >= 400:
            self._raise(response.status_code, response.text, verb, resource, name)
        return response

    def _transport(self, e: httpx.HTTPError, verb: str, resource: str,
                   name: str | None) -> KubeError:
        return unreachable(verb, resource, self.namespace, name, httpx_cause(e, TIMEOUT[0]),
                           self.base)

    def _raise(self, status: int, text: str, verb: str, resource: str,
               name: str | None) -> NoReturn:
        raise api_error(status, text, verb, resource, self.namespace, name)

    @property
    def _pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    async def create_pod(self, body: dict[str, Any]) -> bool:
        """Create a pod; False when it already exists (a redelivered request: success)."""
        try:
            await self._call("POST", self._pods, "create", "pods", body["metadata"]["name"],
                             body=body)
        except KubeConflict:
            return False
        return True

    async def delete_pod(self, name: str, grace_seconds: int = 0) -> bool:
        """Delete a pod; False when it is already gone."""
        try:
            await self._call("DELETE", f"{self._pods}/{name}", "delete", "pods", name,
                             body={"gracePeriodSeconds": grace_seconds,
                                   "propagationPolicy": "Background"})
        except KubeNotFound:
            return False
        return True

    async def list_pods(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        """The pods matching `selector` and the list's resourceVersion."""
        r = await self._call("GET", self._pods, "list", "pods",
                             params={"labelSelector": selector})
        doc = r.json()
        return list(doc.get("items") or []), str(doc["metadata"]["resourceVersion"])

    async def watch_pods(self, selector: str, resource_version: str
                         ) -> AsyncIterator[dict[str, Any]]:
        """The watch events (type, object) from `resource_version`, with bookmarks, until the
        server ends the watch. A 410 Gone arrives as an ERROR event with code 410."""
        params = {"labelSelector": selector, "watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        self.calls["watch pods"] += 1
        try:
            async with self._http.stream(
                    "GET", self.base + self._pods, params=params, headers=self._headers(),
                    timeout=httpx.Timeout(WATCH_SECONDS + 30, connect=TIMEOUT[0])) as r:
                if r.status_code >= 400:
                    self._raise(r.status_code, (await r.aread()).decode(errors="replace"),
                                "watch", "pods", None)
                async for line in r.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as e:
            raise self._transport(e, "watch", "pods", None) from None

    async def read_log(self, name: str, container: str) -> str:
        """A pod's log as it is now (not followed: a finished pod's log is complete)."""
        r = await self._call("GET", f"{self._pods}/{name}/log", "get", "pods/log", name,
                             params={"container": container, "timestamps": "false"})
        return r.text

    async def read_log_lines(self, name: str, container: str, *,
                             since_time: str | None = None) -> list[str]:
        """A pod's log as it is now, each line led by the kubelet's RFC 3339 timestamp (from
        `since_time` on, when given: whole seconds, as the API takes it)."""
        params = {"container": container, "timestamps": "true"}
        if since_time:
            params["sinceTime"] = since_time
        r = await self._call("GET", f"{self._pods}/{name}/log", "get", "pods/log", name,
                             params=params)
        return r.text.splitlines()

    async def follow_log(self, name: str, container: str, *, since_time: str | None = None
                         ) -> AsyncIterator[str]:
        """The lines of a pod's log as they are written (pods/log?follow=true, timestamped),
        from `since_time` on when given, until the server ends the stream — which may be never
        (KWOK's does not end): the caller stops reading when the pod is over. A stream quiet
        for FOLLOW_READ_SECONDS ends in a KubeError (read timeout).

        Refused while the log does not exist yet (a Pending pod; KWOK before it serves the
        file): a KubeError with status 400, to be tried again shortly."""
        params = {"container": container, "follow": "true", "timestamps": "true"}
        if since_time:
            params["sinceTime"] = since_time
        self.calls["get pods/log"] += 1
        request = self._streams.build_request("GET", f"{self.base}{self._pods}/{name}/log",
                                              params=params, headers=self._headers())
        try:
            r = await self._open(request)
            try:
                if r.status_code >= 400:
                    self._raise(r.status_code, (await r.aread()).decode(errors="replace"),
                                "get", "pods/log", name)
                async for line in r.aiter_lines():
                    yield line.rstrip("\r")
            finally:
                await r.aclose()
        except httpx.HTTPError as e:
            raise self._transport(e, "get", "pods/log", name) from None

    async def _open(self, request: httpx.Request) -> httpx.Response:
        """Send a streaming request; its connection and TLS handshake run to their end even
        when the caller is cancelled meanwhile (a follow stopped as its pod ends), and the
        response is then closed in the background: httpcore leaks the socket of a handshake
        that is cut short."""
        sending = asyncio.ensure_future(self._streams.send(request, stream=True))
        self._opening.add(sending)
        sending.add_done_callback(self._opening.discard)
        try:
            return await asyncio.shield(sending)
        except asyncio.CancelledError:
            sending.add_done_callback(self._close_unwanted)
            raise

    def _close_unwanted(self, sending: asyncio.Future[httpx.Response]) -> None:
        if sending.cancelled() or sending.exception() is not None:
            return
        closing = asyncio.ensure_future(sending.result().aclose())
        self._opening.add(closing)
        closing.add_done_callback(self._opening.discard)

    async def create_event(self, body: dict[str, Any]) -> None:
        await self._call("POST", f"/api/v1/namespaces/{self.namespace}/events", "create",
                         "events", body=body)
