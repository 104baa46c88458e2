"""ConfigMapHistory: each Deployment's recent recommendations and scale events, in one ConfigMap."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devtrip_scale.core.errors import KubeConflict, KubeError, KubeNotFound
from devtrip_scale.core.trace import Trace
from devtrip_scale.kube import FIELD_MANAGER, TIMEOUT, request
from devtrip_scale.scaling.models import History, Recommendation, ScaleEvent

CONFLICT_RETRIES = 3
NOTES_KEY = ".notifications"   # not a Deployment name: those never start with a dot


def encode(history: History, deployment: str = "") -> str:
    """One Deployment's history as compact JSON, with its name for people."""
    return json.dumps(
        {
            "deployment": deployment,
            "recommendations": [[r.at.isoformat(), r.replicas] for r in history.recommendations],
            "scaleEvents": [
                [e.at.isoformat(), e.from_replicas, e.to_replicas] for e in history.scale_events
            ],
            "lastWritten": history.last_written,
        },
        separators=(",", ":"),
    )


def decode(text: str) -> History:
    """Parse what `encode` wrote; raises ValueError on anything else."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        recs = tuple(Recommendation(_when(at), int(n)) for at, n in data["recommendations"])
        events = tuple(
            ScaleEvent(_when(at), int(a), int(b)) for at, a, b in data["scaleEvents"]
        )
        last = data.get("lastWritten")
        return History(recs, events, None if last is None else int(last))
    except (KeyError, TypeError) as e:
        raise ValueError(f"unexpected layout: {e}") from None


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {text}")
    return at


UNREAD: Any = object()   # ConfigMapHistory(listed=…) not given: `load` reads it itself
PAGE = 250               # history ConfigMaps per page of the cluster-wide list


@dataclass(frozen=True)
class Stored:
    """What a pass needs of a history ConfigMap: its resourceVersion and its data."""

    resource_version: str
    data: dict[str, str]


def _stored(obj: Mapping[str, Any]) -> Stored:
    """A ConfigMap as JSON (a list item or a GET's body) reduced to what the pass keeps."""
    return Stored(str((obj.get("metadata") or {}).get("resourceVersion") or ""),
                  dict(obj.get("data") or {}))


def _json(response: Any) -> Any:
    """The body of a raw (`_preload_content=False`) response: read as JSON, not as models
    (the client's models cost a millisecond or more per ConfigMap to build)."""
    return json.loads(response.data)


def list_histories(api_client: Any, name: str, trace: Trace | None = None
                   ) -> dict[str, Stored]:
    """Every namespace's history ConfigMap `name`, namespace → what is stored, from one
    cluster-wide list by `metadata.name` (RBAC's resourceNames allow exactly that list), page
    by page."""
    from functools import partial

    from kubernetes import client

    core = client.CoreV1Api(api_client)
    found: dict[str, Stored] = {}
    token: str | None = None
    while True:
        page = _json(request(
            trace or Trace(), "list", "configmaps", "(all namespaces)", None,
            partial(core.list_config_map_for_all_namespaces,
                    field_selector=f"metadata.name={name}", limit=PAGE, _continue=token,
                    _request_timeout=TIMEOUT, _preload_content=False),
            detail=f"list configmaps -A --field-selector metadata.name={name}"))
        for item in page.get("items") or ():
            found[str(item["metadata"]["namespace"])] = _stored(item)
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return found


def fleet_histories(api_client: Any, name: str, trace: Trace | None = None
                    ) -> Callable[[str], ConfigMapHistory]:
    """Each namespace's history store for a fleet pass, all read by one list on first use;
    if that list is refused, each store reads its own ConfigMap (one GET per namespace)."""
    read: list[dict[str, Stored] | None] = []   # [the list's ConfigMaps], [None]: refused

    def history_of(namespace: str) -> ConfigMapHistory:
        if not read:
            try:
                read.append(list_histories(api_client, name, trace))
            except KubeError:
                read.append(None)
        maps = read[0]
        if maps is None:
            return ConfigMapHistory(api_client, namespace, name, trace)
        return ConfigMapHistory(api_client, namespace, name, trace, listed=maps.get(namespace))

    return history_of


class ConfigMapHistory:
    """The history of all targets of a namespace, in the ConfigMap `name`, keyed by Deployment
    UID: a Deployment deleted and created again under its name starts afresh.

    Read once at the start of a run and written once at its end with the resourceVersion read,
    so two runners never lose each other's entries silently: on a conflict it reads again, keeps
    the other writer's entries for Deployments it did not touch, and retries.
    """

    def __init__(self, api_client: Any, namespace: str, name: str,
                 trace: Trace | None = None, listed: Any = UNREAD) -> None:
        """`listed`: the ConfigMap as a cluster-wide list already returned it (None: it does
        not exist), so that `load` needs no request of its own."""
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._ns = namespace
        self._name = name
        self._trace = trace or Trace()
        self._resource_version: str | None = None
        self._exists = False
        self._listed = listed
        self.notes: str | None = None

    def load(self) -> tuple[dict[str, History], list[str]]:
        """Every Deployment's history, and a warning for each entry that could not be read."""
        data = self._read()
        histories: dict[str, History] = {}
        warnings: list[str] = []
        self.notes = data.pop(NOTES_KEY, None)
        for key, text in data.items():
            try:
                histories[key] = decode(text)
            except ValueError as e:
                warnings.append(
                    f"history of {key} in ConfigMap {self._ns}/{self._name} is corrupt ({e}); "
                    "treated as empty"
                )
        return histories, warnings

    def save(self, histories: Mapping[str, tuple[History, str]], notes: str | None = None,
             remove: Sequence[str] = ()) -> None:
        """Write the given Deployments' histories (and notes) and drop the `remove` keys,
        leaving other keys as they are."""
        encoded: dict[str, str | None] = {k: encode(h, name) for k, (h, name) in
                                          histories.items()}
        encoded.update(dict.fromkeys(remove))   # null deletes a key in a merge patch
        if notes is not None:
            encoded[NOTES_KEY] = notes
        for _ in range(CONFLICT_RETRIES):
            try:
                self._write(encoded)
                return
            except KubeConflict:
                self._read()
        self._write(encoded)

    def _read(self) -> dict[str, str]:
        stored: Stored | None
        if self._listed is not UNREAD:   # read once by the list; a conflict reads again
            stored, self._listed = self._listed, UNREAD
        else:
            try:
                stored = _stored(_json(request(
                    self._trace, "get", "configmaps", self._ns, self._name,
                    lambda: self._core.read_namespaced_config_map(
                        self._name, self._ns, _request_timeout=TIMEOUT,
                        _preload_content=False))))
            except KubeNotFound:
                stored = None
        if stored is None:
            self._exists, self._resource_version = False, None
            return {}
        self._exists = True
        self._resource_version = stored.resource_version
        return dict(stored.data)

    def _write(self, encoded: Mapping[str, str | None]) -> None:
        if not self._exists:
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": self._name,
                                 "labels": {"app.kubernetes.io/managed-by": "devscale"}},
                    "data": {k: v for k, v in encoded.items() if v is not None}}
            try:
                answer = _json(request(
                    self._trace, "create", "configmaps", self._ns, self._name,
                    lambda: self._core.create_namespaced_config_map(
                        self._ns, body, field_manager=FIELD_MANAGER,
                        _request_timeout=TIMEOUT, _preload_content=False)))
            except KubeConflict:  # AlreadyExists: someone else created it
                raise KubeConflict("history ConfigMap created concurrently") from None
            self._exists = True
            self._resource_version = _stored(answer).resource_version
            return
        # A patch of the changed keys (null deletes one), the resourceVersion read as its
        # precondition; the answer read as JSON for its new resourceVersion only.
        patch = {"metadata": {"resourceVersion": self._resource_version}, "data": dict(encoded)}
        answer = _json(request(
            self._trace, "patch", "configmaps", self._ns, self._name,
            lambda: self._core.patch_namespaced_config_map(
                self._name, self._ns, patch, field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT, _preload_content=False)))
        self._resource_version = _stored(answer).resource_version
