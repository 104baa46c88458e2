"""DeploymentTarget: list target Deployments and write replicas through the scale subresource."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from devtrip_scale.core.trace import Trace
from devtrip_scale.kube import FIELD_MANAGER, TIMEOUT, request
from devtrip_scale.scaling.models import Unschedulable
from devtrip_scale.scaling.ports import Workload

PAGE_SIZE = 500   # Deployments per list request (limit/continue)


def list_pages(trace: Trace, scope: str, page_size: int, list_call: Callable[..., Any],
               detail: str) -> list[Workload]:
    """Every Deployment `list_call` lists, `page_size` at a time (limit/continue): no response
    of tens of MB. Each page is read as JSON straight into Workloads: the client's models cost
    about a millisecond per Deployment to build, seconds for 10,000."""
    workloads: list[Workload] = []
    token: str | None = None
    while True:
        response = request(
            trace, "list", "deployments", scope, None,
            partial(list_call, limit=page_size, _continue=token, _request_timeout=TIMEOUT,
                    _preload_content=False),
            detail=f"{detail} --limit {page_size}" + (" --continue" if token else ""))
        page = json.loads(response.data)
        workloads.extend(_workload_of(d) for d in page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return workloads


class DeploymentTarget:
    """The Deployments of one namespace, read with paged list calls and scaled one PATCH each."""

    def __init__(self, api_client: Any, namespace: str, trace: Trace | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        from kubernetes import client

        self._apps = client.AppsV1Api(api_client)
        self._ns = namespace
        self._trace = trace or Trace()
        self._page_size = page_size

    def list(self, selector: str | None) -> list[Workload]:
        """The namespace's Deployments, `page_size` at a time, each page read as JSON."""
        return list_pages(
            self._trace, self._ns, self._page_size,
            partial(self._apps.list_namespaced_deployment, self._ns,
                    label_selector=selector or ""),
            f"list deployments -n {self._ns}" + (f" -l {selector}" if selector else ""))

    def get(self, name: str) -> Workload:
        return _workload(request(
            self._trace, "get", "deployments", self._ns, name,
            lambda: self._apps.read_namespaced_deployment(name, self._ns,
                                                          _request_timeout=TIMEOUT)))

    def other_scalers(self) -> dict[str, str]:
        """Deployments of the namespace that an HPA (KEDA's included) already targets."""
        from kubernetes import client

        api = client.AutoscalingV2Api(self._apps.api_client)
        hpas = request(self._trace, "list", "horizontalpodautoscalers", self._ns, None,
                       lambda: api.list_namespaced_horizontal_pod_autoscaler(
                           self._ns, _request_timeout=TIMEOUT)).items
        return {name: text for (_, name), text in _scalers(hpas).items()}

    def unschedulable(self) -> dict[str, Unschedulable]:
        """Deployment name → its pods the scheduler cannot place, from one list of the
        namespace's Pending pods (a field selector keeps it small)."""
        from kubernetes import client

        core = client.CoreV1Api(self._apps.api_client)
        pods = request(self._trace, "list", "pods", self._ns, None,
                       lambda: core.list_namespaced_pod(
                           self._ns, field_selector="status.phase=Pending",
                           _request_timeout=TIMEOUT),
                       detail=f"list pods -n {self._ns} --field-selector status.phase=Pending"
                       ).items
        return {name: found for (_, name), found in _unschedulable(pods).items()}

    def scale(self, name: str, replicas: int, resource_version: str) -> None:
        """Set spec.replicas, only if the Deployment is still at `resource_version` (else 409)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        request(self._trace, "patch", "deployments/scale", self._ns, name,
                lambda: self._apps.patch_namespaced_deployment_scale(
                    name, self._ns, body, field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT),
                detail=f"patch deployments/{name}/scale -n {self._ns} replicas={replicas} "
                       f"resourceVersion={resource_version}")


ALL = "(all namespaces)"   # how an error names the scope of a cluster-wide request


class ClusterDeployments:
    """A fleet pass's view of the cluster: one paginated cluster-wide list of Deployments (and
    of HPAs and Pending pods), writes through each namespace's scale subresource."""

    def __init__(self, api_client: Any, trace: Trace | None = None) -> None:
        from kubernetes import client

        self._api = api_client
        self._apps = client.AppsV1Api(api_client)
        self._trace = trace or Trace()
        self._views: dict[str, DeploymentTarget] = {}

    def namespaces(self, selector: str | None) -> list[str]:
        from kubernetes import client

        core = client.CoreV1Api(self._api)
        found = request(self._trace, "list", "namespaces", ALL, None,
                        lambda: core.list_namespace(label_selector=selector or "",
                                                    _request_timeout=TIMEOUT),
                        detail="list namespaces" + (f" -l {selector}" if selector else ""))
        return sorted(n.metadata.name for n in found.items)

    def list_all(self, selector: str | None, page_size: int) -> list[Workload]:
        """All Deployments of the cluster, paged as `list_pages` reads them."""
        return list_pages(
            self._trace, ALL, page_size,
            partial(self._apps.list_deployment_for_all_namespaces, label_selector=selector or ""),
            "list deployments -A" + (f" -l {selector}" if selector else ""))

    def in_namespace(self, namespace: str) -> DeploymentTarget:
        if namespace not in self._views:
            self._views[namespace] = DeploymentTarget(self._api, namespace, self._trace)
        return self._views[namespace]

    def other_scalers(self) -> dict[tuple[str, str], str]:
        from kubernetes import client

        api = client.AutoscalingV2Api(self._api)
        hpas = request(self._trace, "list", "horizontalpodautoscalers", ALL, None,
                       lambda: api.list_horizontal_pod_autoscaler_for_all_namespaces(
                           _request_timeout=TIMEOUT),
                       detail="list horizontalpodautoscalers -A").items
        return _scalers(hpas)

    def unschedulable(self) -> dict[tuple[str, str], Unschedulable]:
        from kubernetes import client

        core = client.CoreV1Api(self._api)
        pods = request(self._trace, "list", "pods", ALL, None,
                       lambda: core.list_pod_for_all_namespaces(
                           field_selector="status.phase=Pending", _request_timeout=TIMEOUT),
                       detail="list pods -A --field-selector status.phase=Pending").items
        return _unschedulable(pods)


def _scalers(hpas: Any) -> dict[tuple[str, str], str]:
    """(namespace, Deployment) → the HPA (KEDA's included) that already targets it."""
    return {
        (h.metadata.namespace or "", h.spec.scale_target_ref.name): describe_scaler(h)
        for h in hpas
        if h.spec.scale_target_ref.kind == "Deployment"
        and (h.spec.scale_target_ref.api_version or "apps/v1").startswith("apps/")
    }


def _unschedulable(pods: Any) -> dict[tuple[str, str], Unschedulable]:
    """(namespace, Deployment) → its Pending pods that the scheduler cannot place."""
    found: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
    for pod in pods:
        owner = _deployment_of(pod)
        condition = next((c for c in pod.status.conditions or ()
                          if c.type == "PodScheduled" and c.status == "False"
                          and c.reason == "Unschedulable"), None)
        if owner is not None and condition is not None:
            since = condition.last_transition_time or datetime.now(UTC)
            found.setdefault((pod.metadata.namespace or "", owner), []).append(
                (since, condition.message or "Unschedulable"))
    return {where: Unschedulable(len(entries), 0, min(at for at, _ in entries),
                                 _first_sentence(max(entries)[1]))
            for where, entries in found.items()}


def describe_scaler(hpa: Any) -> str:
    """How to name an HPA to a person: KEDA's are named after their ScaledObject."""
    name = hpa.metadata.name
    keda = (hpa.metadata.labels or {}).get("scaledobject.keda.sh/name")
    if keda is None and name.startswith("keda-hpa-"):
        keda = name.removeprefix("keda-hpa-")
    if keda is not None:
        return f"KEDA ScaledObject {keda} (through HorizontalPodAutoscaler {name})"
    return f"HorizontalPodAutoscaler {name}"


def _deployment_of(pod: Any) -> str | None:
    """The Deployment a pod belongs to: its ReplicaSet owner's name less the template hash."""
    template_hash = (pod.metadata.labels or {}).get("pod-template-hash")
    for ref in pod.metadata.owner_references or ():
        if ref.kind == "ReplicaSet" and template_hash and ref.name.endswith(f"-{template_hash}"):
            return str(ref.name).removesuffix(f"-{template_hash}")
    return None


def _first_sentence(message: str) -> str:
    """`0/3 nodes are available: 3 Insufficient cpu.` of the scheduler's longer message."""
    head = message.split(". ", 1)[0].strip()
    return head if head.endswith(".") else head + "."


def _workload_of(d: dict[str, Any]) -> Workload:
    """A Deployment as the API's JSON has it (camelCase, zero counts left out)."""
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    replicas = spec.get("replicas")
    return Workload(
        name=meta["name"],
        replicas=int(replicas if replicas is not None else 1),
        resource_version=meta.get("resourceVersion", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        uid=meta.get("uid") or "",
        ready_replicas=int(status.get("readyReplicas") or 0),
        pods=int(status.get("replicas") or 0),
        namespace=meta.get("namespace") or "",
    )


def _workload(d: Any) -> Workload:
    meta, status = d.metadata, d.status
    return Workload(
        name=meta.name,
        replicas=int(d.spec.replicas if d.spec.replicas is not None else 1),
        resource_version=meta.resource_version,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        uid=meta.uid or "",
        # The API leaves out counts that are 0.
        ready_replicas=int(status.ready_replicas or 0) if status else 0,
        pods=int(status.replicas or 0) if status else 0,
        namespace=meta.namespace or "",
    )
